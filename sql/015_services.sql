-- Services: one deployment serves many applications. A service is one
-- application's policy; `policy` holds only what it sets differently from the
-- deployment's OTP_* settings (an empty object is the deployment itself), so
-- the 'default' service made here is today's one-application deployment,
-- unchanged. The programs keep every service in memory and reload it when
-- NOTIFY otp_services says one changed (and every few seconds regardless).
CREATE TABLE services (
    name           text        PRIMARY KEY
                   CHECK (name ~ '^[a-z0-9][a-z0-9-]{0,31}$' AND name <> 'dlq'),
    friendly_name  text        NOT NULL DEFAULT '' CHECK (length(friendly_name) <= 32),
    policy         jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(policy) = 'object'),
    -- The application's status webhook (signed with webhook_secret).
    webhook_url    text,
    webhook_secret text,
    disabled       boolean     NOT NULL DEFAULT false,
    version        bigint      NOT NULL DEFAULT 1,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
INSERT INTO services (name, friendly_name) VALUES ('default', 'default');

-- Every change to a service or a key: who (the operator's name as given to
-- otp-admin, else the database role), when, what (before and after, secrets
-- left out).
CREATE TABLE service_changes (
    id      bigserial   PRIMARY KEY,
    service text        NOT NULL,
    actor   text        NOT NULL,
    action  text        NOT NULL,
    before  jsonb,
    after   jsonb,
    at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX service_changes_service ON service_changes (service, at);

-- API keys: each bound to one service and its scopes. Only the SHA-256 of a
-- key is kept; the key itself is printed once by `otp-admin key create`.
CREATE TABLE api_keys (
    id         text        PRIMARY KEY,
    service    text        NOT NULL REFERENCES services (name),
    key_hash   text        NOT NULL UNIQUE CHECK (key_hash ~ '^[0-9a-f]{64}$'),
    scopes     text[]      NOT NULL CHECK (scopes <@ ARRAY['create', 'verify', 'read']::text[]),
    label      text        NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz,
    revoked_at timestamptz
);

-- Which service a request belongs to: set from the topic it came on (or the
-- key that sent it through the front door), never from its payload.
ALTER TABLE challenges ADD COLUMN service text NOT NULL DEFAULT 'default';
DROP INDEX IF EXISTS challenges_user_purpose;
CREATE INDEX challenges_user_purpose ON challenges (service, user_id, purpose, created_at);

-- user_id is a service's own namespace: the wrong-code cap per (service, user).
ALTER TABLE verify_user_failures ADD COLUMN service text NOT NULL DEFAULT 'default';
ALTER TABLE verify_user_failures DROP CONSTRAINT verify_user_failures_pkey;
ALTER TABLE verify_user_failures ADD PRIMARY KEY (service, user_id);

-- A change to a service or a key wakes the programs' caches.
CREATE FUNCTION otp_services_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('otp_services', '');
    RETURN NULL;
END $$;
CREATE TRIGGER services_changed AFTER INSERT OR UPDATE OR DELETE ON services
    FOR EACH STATEMENT EXECUTE FUNCTION otp_services_changed();
CREATE TRIGGER api_keys_changed AFTER INSERT OR UPDATE OR DELETE ON api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION otp_services_changed();
