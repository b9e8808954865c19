-- Signed status webhooks to applications (otp-hooks, issue 23). otp-hooks
-- consumes the status topic(s) and writes every event of a service that has
-- a webhook_url here before it commits its Kafka offset; its senders claim
-- the due rows (the lowest undelivered seq of each request only, so a
-- request's events reach the application in order while other requests and
-- services go on), POST them signed with the service's webhook_secret and
-- record the outcome. One row per event and service: the relay may publish an
-- event twice, and the second copy finds its row (event_id, or request_id and
-- seq) and changes nothing.
CREATE TABLE hook_deliveries (
    id           bigserial   PRIMARY KEY,
    service      text        NOT NULL,
    request_id   uuid        NOT NULL,
    seq          bigint      NOT NULL,
    event_id     uuid        NOT NULL UNIQUE,
    type         text        NOT NULL,
    -- The event exactly as it came from the topic: what is signed and sent.
    body         text        NOT NULL,
    attempts     integer     NOT NULL DEFAULT 0,
    -- Due at; while a sender holds a row (a POST in flight), its lease's end.
    next_try_at  timestamptz NOT NULL DEFAULT now(),
    delivered_at timestamptz,
    gave_up_at   timestamptz,
    last_status  integer,     -- the receiver's HTTP status of the last attempt
    last_error   text,        -- why the last attempt failed (no secret, no body)
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (request_id, seq)
);
-- The senders' claim: due rows of one service, oldest due first.
CREATE INDEX hook_deliveries_due ON hook_deliveries (service, next_try_at)
    WHERE delivered_at IS NULL AND gave_up_at IS NULL;
-- Whether a request has an earlier event still to deliver (the order rule).
CREATE INDEX hook_deliveries_open ON hook_deliveries (request_id, seq)
    WHERE delivered_at IS NULL AND gave_up_at IS NULL;
-- The age of the oldest undelivered event (/metrics), and the give-up sweep.
CREATE INDEX hook_deliveries_oldest ON hook_deliveries (created_at)
    WHERE delivered_at IS NULL AND gave_up_at IS NULL;
-- otp-admin webhooks list --service.
CREATE INDEX hook_deliveries_service ON hook_deliveries (service, id);

-- Every `otp-admin webhooks replay`: who, when, what was asked and how many
-- deliveries it made due again.
CREATE TABLE hook_replays (
    id          bigserial   PRIMARY KEY,
    actor       text        NOT NULL,
    selector    jsonb       NOT NULL,
    deliveries  integer     NOT NULL,
    replayed_at timestamptz NOT NULL DEFAULT now()
);

-- New rows wake the senders (replays notify by themselves).
CREATE FUNCTION otp_hooks_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('otp_hooks', '');
    RETURN NULL;
END $$;
CREATE TRIGGER hook_deliveries_added AFTER INSERT ON hook_deliveries
    FOR EACH STATEMENT EXECUTE FUNCTION otp_hooks_added();

-- otp_hooks: the role of otp-hooks (see sql/031_roles.sql). It reads of the
-- services only their names and webhooks, and touches nothing but its own
-- deliveries.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'otp_hooks') THEN
        IF NOT (SELECT rolcreaterole OR rolsuper FROM pg_roles WHERE rolname = current_user) THEN
            RAISE EXCEPTION 'role otp_hooks is missing and % may not create it: as a superuser, '
                            'run CREATE ROLE otp_hooks NOLOGIN; (or ALTER ROLE % CREATEROLE), '
                            'then otp-migrate again', current_user, current_user;
        END IF;
        CREATE ROLE otp_hooks NOLOGIN;
    END IF;
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO otp_hooks', current_database());
END $$;
GRANT USAGE ON SCHEMA public TO otp_hooks;
GRANT SELECT (name, webhook_url, webhook_secret) ON services TO otp_hooks;
GRANT SELECT, INSERT, UPDATE, DELETE ON hook_deliveries TO otp_hooks;
GRANT USAGE, SELECT ON SEQUENCE hook_deliveries_id_seq TO otp_hooks;

GRANT SELECT, UPDATE ON hook_deliveries TO otp_admin;
GRANT SELECT, INSERT ON hook_replays TO otp_admin;
GRANT USAGE, SELECT ON SEQUENCE hook_replays_id_seq TO otp_admin;
