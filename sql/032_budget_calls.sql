-- Budgets count what costs money. A request counts once against the phone,
-- user, country and global limits when it is accepted (ingest, the ledger);
-- that is its first call (or its text). Every further call placed for it and
-- the text sent when its calls failed count here, in the same minute buckets,
-- by the transaction that records them. The phone's key is its keyed hash,
-- which ingest now stores on the challenge (phone_hash) as the purge would.
CREATE FUNCTION otp_budget_count(req uuid) RETURNS void LANGUAGE sql AS $$
    INSERT INTO budget_counts AS b (scope, key, bucket, n)
    SELECT s.scope, s.key, date_trunc('minute', now()), 1
      FROM challenges c
     CROSS JOIN LATERAL (VALUES ('p'::"char", encode(c.phone_hash, 'hex')), ('u', c.user_id),
                                ('c', c.country), ('g', '')) AS s(scope, key)
     WHERE c.request_id = req AND s.key IS NOT NULL
     ORDER BY 1, 2
    ON CONFLICT (scope, key, bucket) DO UPDATE SET n = b.n + 1
$$;

CREATE FUNCTION otp_budget_call() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM otp_budget_count(NEW.request_id);
    RETURN NULL;
END $$;
-- A call after the first (a retry, or one found again after a lost answer).
CREATE TRIGGER calls_budget AFTER INSERT ON calls
    FOR EACH ROW WHEN (NEW.attempt > 1) EXECUTE FUNCTION otp_budget_call();
-- A text sent after calls (the fallback); a request for a text alone counted
-- at ingest.
CREATE TRIGGER challenges_sms_budget AFTER UPDATE OF status ON challenges
    FOR EACH ROW WHEN (NEW.status = 'sms_sent' AND OLD.status IS DISTINCT FROM 'sms_sent'
                       AND NEW.call_attempts > 0)
    EXECUTE FUNCTION otp_budget_call();
