-- Wrong codes per user, as one row per user holding the times of the failures
-- counted in the last hour (at most OTP_MAX_FAILED_VERIFY_PER_HOUR of them).
-- The verify statement reads and extends the row in place: the cost of a
-- check does not grow with traffic, and the row lock taken by the upsert
-- makes "under the cap" and "count one more" a single atomic step.
CREATE TABLE verify_user_failures (
    user_id text          PRIMARY KEY,
    at      timestamptz[] NOT NULL
);
INSERT INTO verify_user_failures (user_id, at)
SELECT user_id, array_agg(at ORDER BY at) FROM verify_failures
 WHERE at > now() - interval '1 hour' GROUP BY user_id;
DROP TABLE verify_failures;
