-- Security keys and passkeys (WebAuthn) beside authenticator apps: a
-- credential's id (base64url) finds it at a sign-in with a passkey alone,
-- which names no one until the authenticator answers.
ALTER TABLE second_factors ADD COLUMN credential_id TEXT;

CREATE UNIQUE INDEX second_factors_credential_id ON second_factors (credential_id);
