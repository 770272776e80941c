-- People, groups and clients kept in the database, and the audit log.
-- Written for SQLite and PostgreSQL alike: TEXT, BIGINT (milliseconds since
-- the epoch), INTEGER flags (0/1), no engine-specific types.

CREATE TABLE users (
    username TEXT PRIMARY KEY,
    email TEXT,
    name TEXT,
    password_hash TEXT,
    disabled INTEGER NOT NULL DEFAULT 0,
    must_change_password INTEGER NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    last_sign_in_at BIGINT
);

CREATE UNIQUE INDEX users_email ON users (email);

CREATE TABLE user_groups (
    name TEXT PRIMARY KEY,
    description TEXT,
    created_at BIGINT NOT NULL
);

-- Members by username: a user of this database, of [[users]], or someone
-- of an outside provider ("corp:alice").
CREATE TABLE group_members (
    group_name TEXT NOT NULL,
    username TEXT NOT NULL,
    added_at BIGINT NOT NULL,
    PRIMARY KEY (group_name, username)
);

CREATE INDEX group_members_username ON group_members (username);

CREATE TABLE clients (
    client_id TEXT PRIMARY KEY,
    secret_hash TEXT,
    redirect_uris TEXT NOT NULL,
    grants TEXT NOT NULL,
    scopes TEXT,
    created_at BIGINT NOT NULL
);

CREATE TABLE audit_events (
    id TEXT PRIMARY KEY,
    at BIGINT NOT NULL,
    event TEXT NOT NULL,
    actor TEXT,
    subject TEXT,
    address TEXT,
    provider TEXT,
    client_id TEXT,
    outcome TEXT,
    detail TEXT
);

CREATE INDEX audit_events_at ON audit_events (at);
CREATE INDEX audit_events_subject ON audit_events (subject, at);
CREATE INDEX audit_events_event ON audit_events (event, at);
