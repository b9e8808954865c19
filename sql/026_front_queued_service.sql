-- A request the front door queued belongs to the service of the key that sent it: only that
-- service's keys read it as `queued` (another service's answers as an unknown one).
ALTER TABLE front_queued ADD COLUMN service text NOT NULL DEFAULT 'default';
