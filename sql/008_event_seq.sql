-- Audit-grade status stream: each request's events are numbered 1, 2, 3 ...
-- without gaps, in the order they commit. The number is taken from a counter
-- on the challenge row by a trigger on the outbox, so every writer (ingest,
-- dispatcher, webhooks, verifier, each inside its own transaction) gets it
-- without a change: the UPDATE locks the challenge row until the writer's
-- transaction ends, so a second writer waits and takes the next number, and a
-- rolled-back transaction gives its number back. Events of a request that has
-- no challenge (a rejected message) count in outbox_seq instead.
ALTER TABLE challenges ADD COLUMN event_seq integer NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN seq integer;

CREATE TABLE outbox_seq (
    request_id uuid PRIMARY KEY,
    n          integer     NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The id is drawn again once the number is held, so that the relay (which
-- sends in id order) sends a request's events in seq order.
CREATE FUNCTION otp_outbox_seq() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE challenges SET event_seq = event_seq + 1
     WHERE request_id = NEW.request_id
    RETURNING event_seq INTO NEW.seq;
    IF NOT FOUND THEN
        INSERT INTO outbox_seq AS s (request_id, n) VALUES (NEW.request_id, 1)
        ON CONFLICT (request_id) DO UPDATE SET n = s.n + 1, updated_at = now()
        RETURNING n INTO NEW.seq;
    END IF;
    NEW.id := nextval('outbox_id_seq');
    RETURN NEW;
END
$$;
CREATE TRIGGER outbox_seq BEFORE INSERT ON outbox
    FOR EACH ROW EXECUTE FUNCTION otp_outbox_seq();

-- Events still waiting for the relay at the upgrade are numbered in id order;
-- the numbering starts with them.
UPDATE outbox o SET seq = x.n
  FROM (SELECT id, row_number() OVER (PARTITION BY request_id ORDER BY id) AS n FROM outbox) x
 WHERE o.id = x.id;
UPDATE challenges c SET event_seq = x.n
  FROM (SELECT request_id, max(seq) AS n FROM outbox GROUP BY request_id) x
 WHERE c.request_id = x.request_id;
ALTER TABLE outbox ALTER COLUMN seq SET NOT NULL;
