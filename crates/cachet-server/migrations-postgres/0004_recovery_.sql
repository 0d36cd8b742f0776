-- Password recovery (docs/recovery.md): this server's OPRF key share per account, the
-- recorded public shares, the recovery auth key, a copy of the sealed key ring, the
-- rate-limit counters; and the encrypted message backup.

CREATE TABLE recovery_accounts (
    user_id           TEXT PRIMARY KEY REFERENCES users (user_id),
    identifier_hash   BYTEA NOT NULL,
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

CREATE TABLE recovery_backups (
    user_id    TEXT PRIMARY KEY REFERENCES users (user_id),
    backup     BYTEA NOT NULL,
    updated_at BIGINT NOT NULL
);
