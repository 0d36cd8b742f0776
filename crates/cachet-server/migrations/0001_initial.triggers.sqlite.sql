CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER case_messages_no_update BEFORE UPDATE ON case_messages
BEGIN SELECT RAISE(ABORT, 'case history is append-only'); END;
CREATE TRIGGER case_messages_no_delete BEFORE DELETE ON case_messages
BEGIN SELECT RAISE(ABORT, 'case history is append-only'); END;
CREATE TRIGGER messages_no_update BEFORE UPDATE ON messages
BEGIN SELECT RAISE(ABORT, 'message ids are permanent'); END;
CREATE TRIGGER mailbox_no_envelope_update BEFORE UPDATE OF envelope, recipient_id, delivery_id ON mailbox
BEGIN SELECT RAISE(ABORT, 'stored envelopes cannot be rewritten'); END;
