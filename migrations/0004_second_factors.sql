-- Second factors: authenticator apps (TOTP, RFC 6238) and the recovery
-- codes that stand in for them. Written for SQLite and PostgreSQL alike.

-- A person's authenticator: its secret sealed (AES-256-GCM, a key made of
-- auth.secret_file, bound to the username); unconfirmed until a first code
-- from it is given; last_step is the last time step accepted, so no code is
-- accepted twice.
CREATE TABLE second_factors (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    secret TEXT NOT NULL,
    confirmed INTEGER NOT NULL DEFAULT 0,
    last_step BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT
);

CREATE INDEX second_factors_username ON second_factors (username);

-- Recovery codes, by their SHA-256 (each is 60 random bits): single use.
CREATE TABLE recovery_codes (
    code_hash TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    used_at BIGINT
);

CREATE INDEX recovery_codes_username ON recovery_codes (username);

-- An admin may require one person to enrol at their next sign-in.
ALTER TABLE users ADD COLUMN second_factor_required INTEGER NOT NULL DEFAULT 0;
