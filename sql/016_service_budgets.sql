-- The per-number, per-user and per-country budgets are per service: their keys
-- become "service:key" (the number's keyed hash, the user, the country); the
-- global count ('g') stays one for the deployment. What was counted before is
-- the default service's.
UPDATE budget_counts SET key = 'default:' || key WHERE scope IN ('p', 'u', 'c');

-- A dead letter names the service whose topic it came on, so that only that
-- service's keys see it (GET /v1/requests/{id}).
ALTER TABLE dead_letters ADD COLUMN service text;
UPDATE dead_letters SET service = 'default' WHERE request_id IS NOT NULL;
