-- The relay vacuums the outbox it empties (worker/relay.c: every event is a
-- dead row once relayed, and autovacuum comes at most once a minute, while
-- the batch read and delete would read every dead row between its passes).
-- PostgreSQL 15 lets only a table's owner VACUUM it, so otp_worker owns the
-- outbox: the queue it alone drains. Nothing else changes: every grant on it
-- stays (the verifier still only inserts), and the role running the
-- migrations becomes a member of otp_worker so that it keeps altering the
-- table in later migrations. A migration role that may not grant otp_worker
-- to itself leaves the owner as it was, and says so: the relay's VACUUM then
-- logs a warning (relay_vacuum_failed) and autovacuum alone cleans the table.
DO $$
BEGIN
    IF NOT pg_has_role(current_user, 'otp_worker', 'MEMBER') THEN
        EXECUTE format('GRANT otp_worker TO %I', current_user);
    END IF;
    ALTER TABLE outbox OWNER TO otp_worker;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE WARNING 'outbox stays owned by %: % may not grant otp_worker to itself (as a superuser: '
                  'GRANT otp_worker TO %; ALTER TABLE outbox OWNER TO otp_worker)',
                  current_user, current_user, current_user;
END $$;
