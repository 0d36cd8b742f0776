-- The server key hierarchy (docs/operations.md): one row, the non-secret sealed root and
-- wrapped key-encryption keys, as JSON. Absent: the server runs unprotected.
CREATE TABLE vault_config (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    config BLOB NOT NULL
);
