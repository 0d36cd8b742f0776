-- The writes of a send and of an ack as server-side functions, so that each costs one
-- round trip to the database instead of one per statement (docs/benchmarks.md).
--
-- Same statements, same order and same locks as the client-side transactions they
-- replace. A refusal raises an exception with a code of cachet's own (class CA), which
-- aborts the statement's transaction: nothing is written, as when the client-side
-- transaction was dropped. CA002 (duplicate) is an answer, not an error, but it too must
-- leave nothing behind (not even the replay-cache entry).

-- Records a request's signature in the replay cache (nothing when `p_hash` is NULL);
-- CA001 if it was there.
CREATE FUNCTION cachet_remember(p_hash BYTEA, p_expires BIGINT)
RETURNS VOID LANGUAGE plpgsql AS $$
BEGIN
    IF p_hash IS NOT NULL THEN
        INSERT INTO seen_signatures (signature_hash, expires_at) VALUES (p_hash, p_expires)
            ON CONFLICT (signature_hash) DO NOTHING;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'replayed signature' USING ERRCODE = 'CA001';
        END IF;
    END IF;
END $$;

CREATE FUNCTION cachet_send(
    p_sender TEXT,
    p_message_id TEXT,
    p_digest BYTEA,
    p_created_at BIGINT,
    p_recipients TEXT[],
    p_envelopes BYTEA[],
    p_case_id TEXT,
    p_case_envelope BYTEA,
    p_contacts TEXT[],
    p_seen_hash BYTEA,
    p_seen_expires BIGINT
) RETURNS VOID LANGUAGE plpgsql AS $$
DECLARE
    v_digest BYTEA;
    v_id BIGINT;
    v_seq BIGINT;
BEGIN
    PERFORM cachet_remember(p_seen_hash, p_seen_expires);
    -- A concurrent insert of the same (sender, id) makes this wait for its outcome.
    INSERT INTO messages (sender_id, message_id, digest, created_at)
        VALUES (p_sender, p_message_id, p_digest, p_created_at)
        ON CONFLICT (sender_id, message_id) DO NOTHING;
    IF NOT FOUND THEN
        SELECT digest INTO v_digest FROM messages
            WHERE sender_id = p_sender AND message_id = p_message_id;
        IF v_digest = p_digest THEN
            RAISE EXCEPTION 'duplicate' USING ERRCODE = 'CA002';
        END IF;
        RAISE EXCEPTION 'message id reused' USING ERRCODE = 'CA003';
    END IF;
    -- Recipients' rows in user id order: two sends never wait for each other in a cycle.
    PERFORM 1 FROM users WHERE user_id = ANY (p_recipients)
        ORDER BY user_id FOR NO KEY UPDATE;
    FOR i IN 1 .. coalesce(array_length(p_recipients, 1), 0) LOOP
        UPDATE users SET last_delivery_id = last_delivery_id + 1
            WHERE user_id = p_recipients[i]
            RETURNING last_delivery_id INTO v_id;
        IF NOT FOUND THEN
            RAISE EXCEPTION '%', p_recipients[i] USING ERRCODE = 'CA004';
        END IF;
        INSERT INTO mailbox (recipient_id, delivery_id, envelope, created_at)
            VALUES (p_recipients[i], v_id, p_envelopes[i], p_created_at);
    END LOOP;
    IF p_case_id IS NOT NULL THEN
        UPDATE cases SET last_seq = last_seq + 1 WHERE case_id = p_case_id
            RETURNING last_seq INTO v_seq;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'case not found' USING ERRCODE = 'CA005';
        END IF;
        INSERT INTO case_messages (case_id, seq, envelope, created_at)
            VALUES (p_case_id, v_seq, p_case_envelope, p_created_at);
    END IF;
    -- Both directions, in one global order (the same reason as above).
    INSERT INTO contacts (user_id, contact_id)
        SELECT a, b FROM (
            SELECT p_sender AS a, c AS b FROM unnest(p_contacts) AS c WHERE c <> p_sender
            UNION
            SELECT c, p_sender FROM unnest(p_contacts) AS c WHERE c <> p_sender
        ) AS pairs
        ORDER BY a, b
        ON CONFLICT (user_id, contact_id) DO NOTHING;
END $$;

CREATE FUNCTION cachet_ack(
    p_user TEXT,
    p_ids BIGINT[],
    p_keep_acked_at BIGINT,
    p_seen_hash BYTEA,
    p_seen_expires BIGINT
) RETURNS BIGINT LANGUAGE plpgsql AS $$
DECLARE
    v_count BIGINT;
BEGIN
    PERFORM cachet_remember(p_seen_hash, p_seen_expires);
    IF p_keep_acked_at IS NULL THEN
        DELETE FROM mailbox WHERE recipient_id = p_user AND delivery_id = ANY (p_ids);
    ELSE
        UPDATE mailbox SET acked_at = p_keep_acked_at
            WHERE recipient_id = p_user AND acked_at IS NULL AND delivery_id = ANY (p_ids);
    END IF;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END $$;
