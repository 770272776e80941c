-- OAuth clients managed in the database gain what [[clients]] has, and
-- one-time invitations let a new user choose their own password.

ALTER TABLE clients ADD COLUMN cors_origins TEXT NOT NULL DEFAULT '[]';
ALTER TABLE clients ADD COLUMN updated_at BIGINT NOT NULL DEFAULT 0;
-- OpenID Connect: where logout may return to, where back-channel logout
-- is sent, and what ID tokens are signed with.
ALTER TABLE clients ADD COLUMN post_logout_redirect_uris TEXT NOT NULL DEFAULT '[]';
ALTER TABLE clients ADD COLUMN backchannel_logout_uri TEXT;
ALTER TABLE clients ADD COLUMN id_token_alg TEXT;
-- Its access tokens (opaque or RFC 9068 JWTs), the resource indicators
-- it may ask for (RFC 8707), and public or pairwise subjects.
ALTER TABLE clients ADD COLUMN access_token_format TEXT;
ALTER TABLE clients ADD COLUMN resources TEXT NOT NULL DEFAULT '[]';
ALTER TABLE clients ADD COLUMN subject_type TEXT;

-- An invitation: the SHA-256 of its link's secret (never the secret),
-- for whom, until when; used once.
CREATE TABLE invitations (
    token_hash TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    created_by TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE INDEX invitations_username ON invitations (username);
