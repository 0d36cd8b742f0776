-- The key server's state on PostgreSQL: identity checks and one recovery account per
-- identifier. Same tables as the SQLite schema (`migrations/`), with PostgreSQL's types.

CREATE TABLE challenges (
    challenge_id    TEXT PRIMARY KEY,
    identifier_hash BYTEA NOT NULL,
    code_hash       BYTEA NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL
);
CREATE INDEX challenges_identifier ON challenges (identifier_hash, expires_at);

CREATE TABLE accounts (
    user_id           TEXT PRIMARY KEY,
    identifier_hash   BYTEA NOT NULL UNIQUE,
    share             BYTEA NOT NULL,
    data_server_share BYTEA NOT NULL,
    key_server_share  BYTEA NOT NULL,
    auth_public       BYTEA NOT NULL,
    envelope          BYTEA NOT NULL,
    updated_at        BIGINT NOT NULL,
    failures          BIGINT NOT NULL,
    last_failure_at   BIGINT NOT NULL,
    pending_delta     BYTEA NOT NULL,
    version           BIGINT NOT NULL
);
