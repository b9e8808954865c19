-- Room on each page for the next version of a row, so that the updates that
-- change no indexed column stay HOT (heap-only: no index entry, no page
-- elsewhere): a wrong code (attempts), a claim and its call record, a user's
-- failure times, a request's event counter. Existing pages keep their fill
-- until they are rewritten; new ones are filled to 70%.
ALTER TABLE challenges SET (fillfactor = 70);
ALTER TABLE verify_user_failures SET (fillfactor = 70);
ALTER TABLE outbox_seq SET (fillfactor = 70);
