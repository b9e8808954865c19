-- webhook_pending holds the events of a call not recorded yet (the webhook
-- beat the worker's own write). It is capped in rows and bytes: each kept
-- event takes the next number and the running total of bytes from the one
-- row of webhook_pending_total, and keeping one drops the oldest beyond
-- OTP_WEBHOOK_PENDING_MAX_ROWS / _MAX_BYTES (counted in
-- otp_verifier_webhooks_total{result="dropped"}). Events for calls that
-- cannot be ours are not kept at all (see common/otp_webhook.c).
CREATE TABLE webhook_pending_total (
    one   boolean PRIMARY KEY DEFAULT true CHECK (one),
    n     bigint  NOT NULL DEFAULT 0,
    bytes bigint  NOT NULL DEFAULT 0
);
INSERT INTO webhook_pending_total DEFAULT VALUES;
-- Rows kept before this migration count as the oldest (0): dropped first.
ALTER TABLE webhook_pending ADD COLUMN n bigint NOT NULL DEFAULT 0,
                            ADD COLUMN upto bigint NOT NULL DEFAULT 0;
CREATE INDEX webhook_pending_n ON webhook_pending (n);
CREATE INDEX webhook_pending_upto ON webhook_pending (upto);

-- "Can this call be ours?": a number one of our challenges is calling right
-- now. Only the rows in 'calling' are in it (few: the attempts under way).
CREATE INDEX challenges_calling_phone ON challenges (phone) WHERE status = 'calling';
