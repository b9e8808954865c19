-- One token bucket per upstream account, shared by every worker, so that all of
-- them together stay under VoIPBin's per-customer request rate.
CREATE TABLE rate_budget (
    name       text PRIMARY KEY,
    tokens     double precision NOT NULL,
    updated_at timestamptz      NOT NULL DEFAULT clock_timestamp()
);
INSERT INTO rate_budget (name, tokens) VALUES ('voipbin', 0);
