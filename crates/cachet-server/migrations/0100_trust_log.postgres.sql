-- Trust log (docs/trust-chain.md): every identity block, in log order. Blocks are
-- append-only; `idx` is the Merkle leaf index, dense from 0. UNIQUE (user_id, seq)
-- keeps two nodes from appending two different blocks at one place of a user's chain.
CREATE TABLE trust_blocks (
    idx        BIGINT PRIMARY KEY,
    user_id    TEXT   NOT NULL,
    seq        BIGINT NOT NULL,
    block      BYTEA  NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (user_id, seq)
);

-- The seed of the server's log key (Ed25519), made on first start.
CREATE TABLE trust_log_key (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seed BYTEA   NOT NULL
);
