-- Requests the front door (POST /v1/requests) handed to Kafka, kept so that GET
-- /v1/requests/{id} answers `queued` from the 202 on, before a worker has read the request
-- (the status read looks here only when neither challenges nor dead_letters know the id).
-- Not a pre-inserted challenge: ingest's ON CONFLICT (request_id) DO NOTHING would take that
-- for a duplicate. Written after Kafka's acknowledgement; rows older than a day are deleted by
-- the front door itself (a request is ingested within seconds, or is long expired).
CREATE TABLE front_queued (
    request_id   uuid        PRIMARY KEY,
    phone_masked text        NOT NULL DEFAULT '',
    queued_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX front_queued_queued_at ON front_queued (queued_at);
