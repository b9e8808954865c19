-- The relay numbers each request's events as it publishes them, instead of a
-- trigger on every outbox insert: the number is the request's counter
-- (challenges.event_seq, or outbox_seq for a request without a challenge) plus
-- the event's place among that request's events in the batch, in id order; the
-- counters move forward in the statement that deletes the acknowledged batch.
-- A relay that dies before that statement sends the batch again with the same
-- numbers. Writers no longer touch the challenge row for a number, so the
-- verifier's and ingest's statements write one row version less per event.
-- A request's ids follow its commit order: every writer of a request's events
-- holds its challenge row (or is the statement that creates it) when it draws
-- the id, so the relay never sees a later event of a request before an earlier.
DROP TRIGGER outbox_seq ON outbox;
DROP FUNCTION otp_outbox_seq();
-- Events already numbered by the trigger keep their numbers: the counters
-- stand before them again, and the relay numbers them the same way.
UPDATE challenges c SET event_seq = c.event_seq - x.n
  FROM (SELECT request_id, count(*) AS n FROM outbox GROUP BY request_id) x
 WHERE c.request_id = x.request_id;
UPDATE outbox_seq q SET n = q.n - x.n
  FROM (SELECT request_id, count(*) AS n FROM outbox GROUP BY request_id) x
 WHERE q.request_id = x.request_id;
ALTER TABLE outbox DROP COLUMN seq;
