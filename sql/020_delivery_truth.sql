-- Delivery truth (issue 22).
--
-- "Heard": how each call decides it (heard_rule: 'marker' = the webhook_send
-- after the first reading, 'timing' = the call's length where no marker can
-- come back, 'answer' = answered and ended normally: keypad calls and the
-- calls recorded before this rule), when the first reading starts and ends
-- after the answer (ms, by the speaking model of common/otp_voice.h), and
-- whether the marker came. NULL rule = 'answer'.
ALTER TABLE calls
    ADD COLUMN heard_rule    text CHECK (heard_rule IN ('marker', 'timing', 'answer')),
    ADD COLUMN code_start_ms integer,
    ADD COLUMN code_end_ms   integer,
    ADD COLUMN heard         boolean NOT NULL DEFAULT false,
    ADD COLUMN heard_at      timestamptz;

-- Fallback by time: when "Didn't get the call?" may be offered
-- (OTP_FALLBACK_AFTER_SECONDS after the first call_requested, unless a call
-- was heard by then), and when it was (once per request, by time or after
-- the last failed call, whichever comes first).
ALTER TABLE challenges
    ADD COLUMN fallback_at         timestamptz,
    ADD COLUMN fallback_offered_at timestamptz;
CREATE INDEX challenges_fallback_due ON challenges (fallback_at) WHERE fallback_at IS NOT NULL;

-- Calls to end at VoIPBin: the call of a request superseded (by a resend or a
-- newer request) or cancelled while it may still be reading a dead code. The
-- worker's dispatcher sends POST /v1.0/calls/{id}/hangup (one token of the
-- shared budget per try), retried with backoff until done_at.
CREATE TABLE call_hangups (
    call_id      uuid        PRIMARY KEY,
    request_id   uuid        NOT NULL,
    reason       text        NOT NULL CHECK (reason IN ('superseded', 'cancelled')),
    tries        integer     NOT NULL DEFAULT 0,
    next_try_at  timestamptz NOT NULL DEFAULT now(),
    lease_owner  text,
    outcome      text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    done_at      timestamptz
);
CREATE INDEX call_hangups_due ON call_hangups (next_try_at) WHERE done_at IS NULL;

-- A request leaving for 'superseded' or 'cancelled' while its call may be
-- live queues that call's hang-up and wakes the dispatchers. A trigger, so
-- every way there (the worker's supersede, the verifier's and otp-admin's
-- cancel) is covered by one rule.
CREATE FUNCTION queue_call_hangup() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- A call whose end is already known needs nothing.
    IF NOT EXISTS (SELECT 1 FROM calls WHERE call_id = OLD.call_id AND status = 'hangup') THEN
        INSERT INTO call_hangups (call_id, request_id, reason)
        VALUES (OLD.call_id, OLD.request_id, NEW.status)
        ON CONFLICT (call_id) DO NOTHING;
        PERFORM pg_notify('otp_due', '');
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER challenges_call_hangup
    AFTER UPDATE OF status ON challenges
    FOR EACH ROW
    WHEN (NEW.status IN ('superseded', 'cancelled') AND OLD.call_id IS NOT NULL
          AND OLD.status IN ('call_requested', 'ringing', 'answered', 'delivered'))
    EXECUTE FUNCTION queue_call_hangup();
