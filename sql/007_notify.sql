-- Wake-ups instead of polling: an idle worker costs the database nothing.
-- otp_due: a challenge became due earlier than it was (a new request, a retry
-- scheduled by a webhook, a lease given back). Claims move next_attempt_at
-- later and say nothing, and so does every verify. The payload is empty, so a
-- transaction that makes many rows due sends one notification (ingest: one
-- per batch).
CREATE FUNCTION otp_notify_due() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('otp_due', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER challenges_due_insert AFTER INSERT ON challenges
    FOR EACH ROW WHEN (NEW.next_attempt_at IS NOT NULL)
    EXECUTE FUNCTION otp_notify_due();
CREATE TRIGGER challenges_due_update AFTER UPDATE OF next_attempt_at ON challenges
    FOR EACH ROW WHEN (NEW.next_attempt_at IS NOT NULL
                       AND (OLD.next_attempt_at IS NULL OR NEW.next_attempt_at < OLD.next_attempt_at))
    EXECUTE FUNCTION otp_notify_due();

-- There is no trigger on the outbox: a transaction that notifies takes a
-- database-wide lock through its commit, so one on every verify would
-- serialise the verifier's commits. The worker wakes its relay itself after
-- its own batches; the relay polls, backing off while the outbox is empty.
