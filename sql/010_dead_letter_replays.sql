-- Every re-publication of a dead letter by `otp-admin dlq replay`: when, the
-- bytes sent (the stored ones or an operator's fixed version) and where they
-- landed, so a replay can be traced and is never done blind twice.
CREATE TABLE dead_letter_replays (
    id             bigserial PRIMARY KEY,
    dead_letter_id bigint      NOT NULL REFERENCES dead_letters (id) ON DELETE CASCADE,
    edited         boolean     NOT NULL,
    payload        bytea       NOT NULL,
    topic          text        NOT NULL,
    kpartition     integer     NOT NULL,
    koffset        bigint      NOT NULL,
    replayed_by    text        NOT NULL DEFAULT current_user,
    replayed_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dead_letter_replays_dl ON dead_letter_replays (dead_letter_id);
