-- Each request's event counter lives in outbox_seq alone, not on the
-- challenge row: the relay moves the counters in the statement that deletes
-- an acknowledged batch, and an UPDATE of challenges there waited on (and
-- was waited on by) the dispatcher's claims and the verifier, which hold the
-- same rows; every counter move also left one more dead challenge version.
-- The challenge's counter is the one in use where both exist.
INSERT INTO outbox_seq AS q (request_id, n)
SELECT request_id, event_seq FROM challenges WHERE event_seq > 0
    ON CONFLICT (request_id) DO UPDATE SET n = excluded.n, updated_at = now();
ALTER TABLE challenges DROP COLUMN event_seq;
