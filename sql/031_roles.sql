-- Least privilege: one group role per program, holding only what it needs.
-- NOLOGIN: the operator grants a role to the login role each program uses
-- (CREATE ROLE otp_worker_1 LOGIN PASSWORD '...' IN ROLE otp_worker), or,
-- for local peer/trust use, ALTER ROLE otp_worker LOGIN. The role running
-- the migrations owns the tables and keeps every right; it needs CREATEROLE
-- the first time (roles are shared by the whole cluster, so a second
-- database of the same cluster finds them there).
--   otp_worker    ingest, calls, the relay, the purge: never API keys or the
--                 audit of service changes
--   otp_verifier  checks codes, records webhooks, reads states and keys:
--                 never deletes a challenge, never touches budgets or dead
--                 letters beyond reading a request's fate
--   otp_admin     otp-admin: everything it inspects, replays, purges and
--                 manages (services, keys)
-- A migration that adds a table grants it to the roles that need it.
DO $$
DECLARE r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['otp_worker', 'otp_verifier', 'otp_admin'] LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) THEN
            IF NOT (SELECT rolcreaterole OR rolsuper FROM pg_roles
                     WHERE rolname = current_user) THEN
                RAISE EXCEPTION 'role % is missing and % may not create it: as a superuser, run '
                                'CREATE ROLE otp_worker NOLOGIN; CREATE ROLE otp_verifier NOLOGIN; '
                                'CREATE ROLE otp_admin NOLOGIN; (or ALTER ROLE % CREATEROLE), '
                                'then otp-migrate again', r, current_user, current_user;
            END IF;
            EXECUTE format('CREATE ROLE %I NOLOGIN', r);
        END IF;
    END LOOP;
END $$;

DO $$ BEGIN
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO otp_worker, otp_verifier, otp_admin',
                   current_database());
END $$;
GRANT USAGE ON SCHEMA public TO otp_worker, otp_verifier, otp_admin;
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM otp_worker, otp_verifier, otp_admin;

GRANT SELECT, INSERT, UPDATE, DELETE ON challenges, calls, outbox, outbox_seq, webhook_pending,
    webhook_pending_total, rate_budget, budget_counts, dead_letters, dead_letter_replays
    TO otp_worker;
GRANT SELECT, DELETE ON verify_user_failures TO otp_worker;
GRANT SELECT ON services TO otp_worker;

GRANT SELECT, UPDATE ON challenges, calls, webhook_pending_total TO otp_verifier;
GRANT INSERT ON outbox TO otp_verifier;
GRANT SELECT, INSERT, UPDATE ON verify_user_failures TO otp_verifier;
GRANT SELECT, INSERT, DELETE ON webhook_pending TO otp_verifier;
GRANT SELECT ON dead_letters, services, api_keys TO otp_verifier;

GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO otp_admin;
REVOKE INSERT, UPDATE, DELETE ON schema_migrations FROM otp_admin;

-- Serial columns: whoever inserts the rows draws their ids.
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO otp_worker, otp_verifier, otp_admin;
