-- The exact bytes of every message sent to the DLQ. The DLQ copy has every run
-- of digits long enough to be a phone number masked; operators who need the
-- original (to fix and re-send it) find it here by dead_letter_id.
CREATE TABLE dead_letters (
    id          bigserial PRIMARY KEY,
    reason      text        NOT NULL,
    error       text        NOT NULL,
    topic       text        NOT NULL,
    kpartition  integer     NOT NULL,
    koffset     bigint      NOT NULL,
    payload     bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
