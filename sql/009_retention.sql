-- Retention (OTP_RETENTION_DAYS): the purge (worker in the background, or
-- otp-admin purge) deletes challenges, calls and dead letters past it, and
-- replaces a challenge's number by a keyed hash once it can no longer call or
-- text. BRIN indexes find the old rows at almost no cost to the inserts.
ALTER TABLE challenges ALTER COLUMN phone DROP NOT NULL;
ALTER TABLE challenges ADD COLUMN phone_hash bytea;
-- The rows that still hold a number: few (the last minutes of traffic).
CREATE INDEX challenges_phone_kept ON challenges (expires_at) WHERE phone IS NOT NULL;
CREATE INDEX challenges_created_brin ON challenges USING brin (created_at);
CREATE INDEX dead_letters_created_brin ON dead_letters USING brin (created_at);
