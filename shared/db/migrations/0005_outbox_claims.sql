-- A writer that publishes its rows itself as soon as it has committed them claims them for a
-- few seconds: relays leave claimed rows alone, and take them once the claim has run out (the
-- writer died before publishing them).
ALTER TABLE outbox ADD COLUMN claimed_until timestamptz;
