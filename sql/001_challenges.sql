-- Challenges: one row per OTP request (request_id is the idempotency key).
-- Only a keyed hash of the code is stored, with the id of the key that made it.
CREATE TABLE challenges (
    request_id        uuid PRIMARY KEY,
    user_id           text        NOT NULL,
    purpose           text        NOT NULL,
    phone             text        NOT NULL,
    phone_masked      text        NOT NULL,
    country           text        NOT NULL DEFAULT '',
    locale            text        NOT NULL,
    code_length       smallint    NOT NULL CHECK (code_length BETWEEN 4 AND 10),
    code_hash         bytea,
    key_id            smallint,
    status            text        NOT NULL,
    attempts          integer     NOT NULL DEFAULT 0,
    max_attempts      integer     NOT NULL,
    call_attempts     integer     NOT NULL DEFAULT 0, -- calls placed (or maybe placed)
    tries             integer     NOT NULL DEFAULT 0, -- call requests sent, placed or not: the backoff exponent
    max_call_attempts integer     NOT NULL,
    -- When the dispatcher should next act on the row; NULL = nothing to do.
    -- A claim sets it to the lease's end, so a crashed worker's row comes due again.
    next_attempt_at   timestamptz,
    lease_owner       text,
    attempt_started_at timestamptz,
    call_id           uuid,
    options           jsonb       NOT NULL DEFAULT '{}',
    metadata          jsonb,
    requested_at      timestamptz NOT NULL,
    expires_at        timestamptz NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    verified_at       timestamptz,
    CHECK (attempts <= max_attempts)
);

CREATE INDEX challenges_due ON challenges (next_attempt_at) WHERE next_attempt_at IS NOT NULL;
CREATE INDEX challenges_user_purpose ON challenges (user_id, purpose, created_at);
CREATE INDEX challenges_call ON challenges (call_id) WHERE call_id IS NOT NULL;

-- Every call placed, so a call's webhooks find their challenge and doubled
-- calls can be counted.
CREATE TABLE calls (
    call_id       uuid PRIMARY KEY,
    request_id    uuid        NOT NULL REFERENCES challenges (request_id),
    attempt       integer     NOT NULL,
    status        text        NOT NULL DEFAULT 'dialing',
    status_rank   integer     NOT NULL DEFAULT 0,
    hangup_by     text,
    hangup_reason text,
    answered      boolean     NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX calls_request ON calls (request_id);

-- Transactional outbox: written with each state change, relayed to
-- otp.call_status in id order, deleted once the broker acknowledged it.
CREATE TABLE outbox (
    id         bigserial PRIMARY KEY,
    event_id   uuid        NOT NULL DEFAULT gen_random_uuid(),
    request_id uuid        NOT NULL,
    type       text        NOT NULL,
    attrs      jsonb       NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Webhook events for a call id not yet recorded (the webhook beat the
-- worker's own write); applied when the call id arrives.
CREATE TABLE webhook_pending (
    id          bigserial PRIMARY KEY,
    call_id     uuid        NOT NULL,
    body        jsonb       NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_pending_call ON webhook_pending (call_id);
