-- Services and the roles of 031, which were written side by side:
-- the calls and texts that 032 counts go to each service's own budgets (keys "service:key",
-- as ingest counts a request: 016), and the tables added by 020 and 025 are granted to the
-- roles that use them (the worker sends the hang-ups; the verifier's cancel queues one through
-- 020's trigger, and its front door keeps the queued requests of 025).
CREATE OR REPLACE FUNCTION otp_budget_count(req uuid) RETURNS void LANGUAGE sql AS $$
    INSERT INTO budget_counts AS b (scope, key, bucket, n)
    SELECT s.scope, s.key, date_trunc('minute', now()), 1
      FROM challenges c
     CROSS JOIN LATERAL (VALUES ('p'::"char", c.service || ':' || encode(c.phone_hash, 'hex')),
                                ('u', c.service || ':' || c.user_id),
                                ('c', c.service || ':' || c.country), ('g', '')) AS s(scope, key)
     WHERE c.request_id = req AND s.key IS NOT NULL
     ORDER BY 1, 2
    ON CONFLICT (scope, key, bucket) DO UPDATE SET n = b.n + 1
$$;

GRANT SELECT, INSERT, UPDATE, DELETE ON call_hangups TO otp_worker;
GRANT SELECT, INSERT ON call_hangups TO otp_verifier;
GRANT SELECT, INSERT, DELETE ON front_queued TO otp_verifier;
