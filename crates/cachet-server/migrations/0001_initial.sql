
-- Registered users. The identifier (phone number or e-mail) is stored only as its
-- discovery hash (whitepaper 10.4).
CREATE TABLE users (
    user_id TEXT PRIMARY KEY,
    identifier_hash BLOB NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    verified BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL,
    -- Last delivery id handed out for this user's mailbox; bumped under the row lock so
    -- delivery ids grow in commit order even with several writers.
    last_delivery_id BIGINT NOT NULL DEFAULT 0
);

-- Every key generation of every user, kept forever (whitepaper 5.3).
CREATE TABLE user_keys (
    user_id TEXT NOT NULL REFERENCES users (user_id),
    key_version BIGINT NOT NULL,
    box_key BLOB NOT NULL,
    sign_key BLOB NOT NULL,
    valid_from BIGINT NOT NULL,
    valid_until BIGINT NOT NULL DEFAULT 0,
    reason BIGINT NOT NULL,
    previous_key_signature BLOB NOT NULL,
    revoked_by_operator TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (user_id, key_version)
);

-- Pending one-time codes; deleted when used, exhausted or expired.
CREATE TABLE challenges (
    challenge_id TEXT PRIMARY KEY,
    identifier_hash BLOB NOT NULL,
    code_hash BLOB NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX challenges_expires_at ON challenges (expires_at);

-- Request signatures accepted within the replay window.
CREATE TABLE seen_signatures (
    signature_hash BLOB PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX seen_signatures_expires_at ON seen_signatures (expires_at);

-- Individual operator credentials (whitepaper 10.6).
CREATE TABLE operators (
    name TEXT PRIMARY KEY,
    sign_key BLOB NOT NULL,
    created_at BIGINT NOT NULL
);

-- One row per accepted (sender, message id): makes resends idempotent and forbids
-- reusing an id for other content. Holds a digest, never the ciphertext.
CREATE TABLE messages (
    sender_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    digest BLOB NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (sender_id, message_id)
);

-- Store-and-forward mailboxes. A row is deleted when acked, or, for web clients, marked
-- acked and deleted after the retention period.
CREATE TABLE mailbox (
    recipient_id TEXT NOT NULL REFERENCES users (user_id),
    delivery_id BIGINT NOT NULL,
    envelope BLOB NOT NULL,
    created_at BIGINT NOT NULL,
    acked_at BIGINT,
    PRIMARY KEY (recipient_id, delivery_id)
);
CREATE INDEX mailbox_acked_at ON mailbox (acked_at) WHERE acked_at IS NOT NULL;

-- Who exchanged envelopes with whom (both directions), for contact updates.
CREATE TABLE contacts (
    user_id TEXT NOT NULL REFERENCES users (user_id),
    contact_id TEXT NOT NULL REFERENCES users (user_id),
    PRIMARY KEY (user_id, contact_id)
);

CREATE TABLE attachments (
    attachment_id TEXT PRIMARY KEY,
    owner_id TEXT NOT NULL REFERENCES users (user_id),
    sealed_size BIGINT NOT NULL,
    chunk_size BIGINT NOT NULL,
    complete BOOLEAN NOT NULL DEFAULT FALSE,
    sha256 BLOB NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX attachments_owner_id ON attachments (owner_id);

CREATE TABLE attachment_chunks (
    attachment_id TEXT NOT NULL REFERENCES attachments (attachment_id),
    chunk_index BIGINT NOT NULL,
    size BIGINT NOT NULL,
    PRIMARY KEY (attachment_id, chunk_index)
);

CREATE TABLE attachment_readers (
    attachment_id TEXT NOT NULL REFERENCES attachments (attachment_id),
    reader_id TEXT NOT NULL REFERENCES users (user_id),
    PRIMARY KEY (attachment_id, reader_id)
);

-- Patient cases (whitepaper 3.6, 8.2.3). sealed_fields is secretbox ciphertext.
CREATE TABLE cases (
    case_id TEXT PRIMARY KEY,
    created_by TEXT NOT NULL REFERENCES users (user_id),
    sealed_fields BLOB NOT NULL,
    created_at BIGINT NOT NULL,
    last_seq BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE case_participants (
    case_id TEXT NOT NULL REFERENCES cases (case_id),
    user_id TEXT NOT NULL REFERENCES users (user_id),
    added_by TEXT NOT NULL,
    added_at BIGINT NOT NULL,
    PRIMARY KEY (case_id, user_id)
);
CREATE INDEX case_participants_user_id ON case_participants (user_id);

CREATE TABLE case_keys (
    case_id TEXT NOT NULL,
    participant_id TEXT NOT NULL,
    key_epoch BIGINT NOT NULL,
    sealed_by TEXT NOT NULL,
    sealer_box_key BLOB NOT NULL,
    recipient_box_key BLOB NOT NULL,
    nonce BLOB NOT NULL,
    ciphertext BLOB NOT NULL,
    PRIMARY KEY (case_id, participant_id, key_epoch),
    FOREIGN KEY (case_id, participant_id) REFERENCES case_participants (case_id, user_id)
);

-- Case histories are kept, so that participants added later read from the start.
CREATE TABLE case_messages (
    case_id TEXT NOT NULL REFERENCES cases (case_id),
    seq BIGINT NOT NULL,
    envelope BLOB NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (case_id, seq)
);

-- Append-only, hash-chained log of operator actions (whitepaper 10.6).
-- hash = SHA-256(prev_hash || AuditEntry{seq..detail} encoded); prev_hash of seq 1 is 32 zero bytes.
CREATE TABLE audit_log (
    seq BIGINT PRIMARY KEY,
    timestamp BIGINT NOT NULL,
    operator_id TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash BLOB NOT NULL,
    hash BLOB NOT NULL
);

-- History may only grow: refuse rewrites at the database too, not only in the server.
