-- The key server's state: identity checks and one recovery account per identifier.

CREATE TABLE challenges (
    challenge_id    TEXT PRIMARY KEY,
    identifier_hash BLOB NOT NULL,
    code_hash       BLOB NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL
);
CREATE INDEX challenges_identifier ON challenges (identifier_hash, expires_at);

CREATE TABLE accounts (
    user_id           TEXT PRIMARY KEY,
    identifier_hash   BLOB NOT NULL UNIQUE,
    share             BLOB NOT NULL,
    data_server_share BLOB NOT NULL,
    key_server_share  BLOB NOT NULL,
    auth_public       BLOB NOT NULL,
    envelope          BLOB NOT NULL,
    updated_at        INTEGER NOT NULL,
    failures          INTEGER NOT NULL,
    last_failure_at   INTEGER NOT NULL,
    pending_delta     BLOB NOT NULL,
    version           INTEGER NOT NULL
);
