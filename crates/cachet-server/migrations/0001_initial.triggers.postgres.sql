-- The message is the trigger's argument.
CREATE FUNCTION cachet_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%', TG_ARGV[0] USING ERRCODE = 'restrict_violation';
END;
$$;

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION cachet_refuse_change('audit_log is append-only');
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION cachet_refuse_change('audit_log is append-only');
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION cachet_refuse_change('audit_log is append-only');
CREATE TRIGGER case_messages_no_update BEFORE UPDATE ON case_messages
    FOR EACH ROW EXECUTE FUNCTION cachet_refuse_change('case history is append-only');
CREATE TRIGGER case_messages_no_delete BEFORE DELETE ON case_messages
    FOR EACH ROW EXECUTE FUNCTION cachet_refuse_change('case history is append-only');
CREATE TRIGGER case_messages_no_truncate BEFORE TRUNCATE ON case_messages
    FOR EACH STATEMENT EXECUTE FUNCTION cachet_refuse_change('case history is append-only');
CREATE TRIGGER messages_no_update BEFORE UPDATE ON messages
    FOR EACH ROW EXECUTE FUNCTION cachet_refuse_change('message ids are permanent');
CREATE TRIGGER mailbox_no_envelope_update
    BEFORE UPDATE OF envelope, recipient_id, delivery_id ON mailbox
    FOR EACH ROW EXECUTE FUNCTION cachet_refuse_change('stored envelopes cannot be rewritten');
