-- The key server's own key hierarchy (docs/operations.md), independent of the data
-- server's: the non-secret vault document, its operators, and a hash-chained audit log.
CREATE TABLE vault_config (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    config BYTEA NOT NULL
);

CREATE TABLE operators (
    name       TEXT PRIMARY KEY,
    public_key BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE audit_log (
    seq         BIGINT PRIMARY KEY,
    timestamp   BIGINT NOT NULL,
    operator_id TEXT NOT NULL,
    action      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    detail      TEXT NOT NULL,
    prev_hash   BYTEA NOT NULL,
    hash        BYTEA NOT NULL
);

-- Signatures of operator requests seen within the clock window (replay protection).
CREATE TABLE seen_signatures (
    replay_id  BYTEA PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
