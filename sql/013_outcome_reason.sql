-- Why a request ended without a code to check, kept on the row (the outbox
-- that carried it to the status topic is deleted once relayed): the cause of
-- the last failed call attempt for 'failed', the refusal for 'rate_limited',
-- 'blocked' and 'expired' on arrival. GET /v1/requests/{id} shows it, and
-- `otp-admin resend --failed-since T [--cause C]` picks failed requests by
-- failed_at and cause.
ALTER TABLE challenges ADD COLUMN reason text;
ALTER TABLE challenges ADD COLUMN failed_at timestamptz;
UPDATE challenges SET failed_at = updated_at WHERE status = 'failed';
CREATE INDEX challenges_failed_at ON challenges (failed_at) WHERE failed_at IS NOT NULL;

-- A dead letter names the request it carried (when it had a valid request_id),
-- so the front door's GET /v1/requests/{id} can say it was rejected, and why.
ALTER TABLE dead_letters ADD COLUMN request_id uuid;
CREATE INDEX dead_letters_request ON dead_letters (request_id) WHERE request_id IS NOT NULL;
