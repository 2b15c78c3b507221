-- The request rate limit's token buckets, one per API key (its SHA-256), shared by every replica.
CREATE TABLE rate_buckets (
    key_digest  bytea            PRIMARY KEY,
    tokens      double precision NOT NULL,
    at          double precision NOT NULL  -- epoch seconds of the last token taken, database clock
);
