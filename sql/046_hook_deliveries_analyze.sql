-- Statistics of hook_deliveries as it grows (otp-hooks, hooks/consume.c). A
-- backlog (an outage, a replay) takes the table from a few rows to tens of
-- thousands within seconds, and autovacuum analyzes it at most once a minute:
-- meanwhile the senders' statements were planned for the few rows (an index
-- scanned whole for every candidate, a table scanned for every row), and one
-- claim took from 150 ms to 10 s, so a fast receiver got 27 deliveries a
-- second. otp-hooks calls this after writing many rows. ANALYZE needs the
-- table's owner, so the function runs as its owner; it does nothing else, and
-- returns the rows the statistics now count.
CREATE FUNCTION otp_hooks_analyze() RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    ANALYZE public.hook_deliveries;
    RETURN (SELECT reltuples::bigint FROM pg_class WHERE oid = 'public.hook_deliveries'::regclass);
END $$;
REVOKE ALL ON FUNCTION otp_hooks_analyze() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION otp_hooks_analyze() TO otp_hooks;
