-- What changed, for every gateway sharing the database to act on within a
-- second (end the sessions of a user disabled, deleted, taken out of a
-- group, or whose password was reset). Kept a day.

CREATE TABLE changes (
    id TEXT PRIMARY KEY,
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL
);

CREATE INDEX changes_at ON changes (at);
