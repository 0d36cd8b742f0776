-- Password recovery (docs/recovery.md): this server's OPRF key share per account, the
-- recorded public shares, the recovery auth key, a copy of the sealed key ring, the
-- rate-limit counters; and the encrypted message backup.

CREATE TABLE recovery_accounts (
    user_id           TEXT PRIMARY KEY REFERENCES users (user_id),
    identifier_hash   BLOB NOT NULL,
    share             BLOB NOT NULL,
    data_server_share BLOB NOT NULL,
    key_server_share  BLOB NOT NULL,
    auth_public       BLOB NOT NULL,
    envelope          BLOB NOT NULL,
    updated_at        BIGINT NOT NULL,
    failures          BIGINT NOT NULL,
    last_failure_at   BIGINT NOT NULL,
    pending_delta     BLOB NOT NULL,
    version           BIGINT NOT NULL
);

CREATE TABLE recovery_backups (
    user_id    TEXT PRIMARY KEY REFERENCES users (user_id),
    backup     BLOB NOT NULL,
    updated_at BIGINT NOT NULL
);
