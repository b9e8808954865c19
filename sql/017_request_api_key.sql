-- The id of the API key that sent a request through the front door (never the key): every
-- status event of the request names it, for audit. NULL for a request published to Kafka
-- directly.
ALTER TABLE challenges ADD COLUMN api_key_id text;
