-- The call budgets as per-minute counters: scope ('p' phone, 'u' user,
-- 'c' country, 'g' everyone), key, the minute, and the requests accepted in it.
-- Read per ingest batch for the batch's keys only, so a request costs the
-- same however busy the hour or the day has been.
CREATE TABLE budget_counts (
    scope  "char"      NOT NULL,
    key    text        NOT NULL,
    bucket timestamptz NOT NULL,
    n      integer     NOT NULL,
    PRIMARY KEY (scope, key, bucket)
);
CREATE INDEX budget_counts_bucket ON budget_counts (bucket);

-- What the old count(*) queries saw, carried over so the limits hold across
-- the upgrade.
INSERT INTO budget_counts (scope, key, bucket, n)
SELECT s.scope, s.key, date_trunc('minute', c.created_at), count(*)
  FROM challenges c
 CROSS JOIN LATERAL (VALUES ('p'::"char", c.phone), ('u', c.user_id), ('c', c.country), ('g', ''))
       AS s(scope, key)
 WHERE c.created_at > now() - interval '1 day'
   AND c.status NOT IN ('rate_limited', 'blocked')
 GROUP BY 1, 2, 3;

-- The budgets no longer read challenges by phone, country or time.
DROP INDEX IF EXISTS challenges_phone_created;
DROP INDEX IF EXISTS challenges_country_created;
DROP INDEX IF EXISTS challenges_created;

-- A replayed batch writes its dead letters once.
DELETE FROM dead_letters d USING dead_letters e
 WHERE d.topic = e.topic AND d.kpartition = e.kpartition AND d.koffset = e.koffset AND d.id > e.id;
CREATE UNIQUE INDEX dead_letters_source ON dead_letters (topic, kpartition, koffset);
