-- A challenge's status changes many times (calling, ringing, answered, delivered, verified,
-- locked ...), by the worker, the webhooks and the verifier. 030's partial index on phone
-- WHERE status = 'calling' put status in an index predicate, and PostgreSQL then makes every
-- change of status a non-HOT update: a new entry in each of the table's ten indexes, for the
-- verifier's right codes (4,237/s against 6,026/s before it, one make bench) and for every
-- status webhook. "Is one of our challenges calling this number?" (common/otp_webhook.c,
-- keep_sql) asks by phone: the (phone, created_at) index of 003 finds a number's challenges
-- (a handful: the per-number limits bound them), and status is checked on those rows.
DROP INDEX IF EXISTS challenges_calling_phone;
