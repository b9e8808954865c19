-- The call budgets count recent requests per number, per user and per country.
CREATE INDEX challenges_phone_created ON challenges (phone, created_at);
CREATE INDEX challenges_country_created ON challenges (country, created_at);
CREATE INDEX challenges_created ON challenges (created_at);

-- Failed verifications per user, across challenges (capped per hour).
CREATE TABLE verify_failures (
    user_id text        NOT NULL,
    at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX verify_failures_user_at ON verify_failures (user_id, at);
