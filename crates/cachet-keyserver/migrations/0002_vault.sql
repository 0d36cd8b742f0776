-- The key server's own key hierarchy (docs/operations.md), independent of the data
-- server's: the non-secret vault document, its operators, and a hash-chained audit log.
CREATE TABLE vault_config (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    config BLOB NOT NULL
);

CREATE TABLE operators (
    name       TEXT PRIMARY KEY,
    public_key BLOB NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE audit_log (
    seq         INTEGER PRIMARY KEY,
    timestamp   INTEGER NOT NULL,
    operator_id TEXT NOT NULL,
    action      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    detail      TEXT NOT NULL,
    prev_hash   BLOB NOT NULL,
    hash        BLOB NOT NULL
);

-- Signatures of operator requests seen within the clock window (replay protection).
CREATE TABLE seen_signatures (
    replay_id  BLOB PRIMARY KEY,
    expires_at INTEGER NOT NULL
);
