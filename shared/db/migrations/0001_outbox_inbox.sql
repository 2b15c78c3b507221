-- Transactional outbox: messages written in the handler's transaction, published by the relay.
CREATE TABLE outbox (
    id             bigserial PRIMARY KEY,
    message_id     uuid        NOT NULL,
    exchange       text        NOT NULL,
    routing_key    text        NOT NULL,
    type           text        NOT NULL,
    correlation_id uuid,
    reply_to       text,
    mandatory      boolean     NOT NULL DEFAULT false,
    body           bytea       NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- Inbox: one row per message whose effect is committed; a redelivery finds it and does nothing.
CREATE TABLE inbox (
    consumer     text        NOT NULL,
    message_id   uuid        NOT NULL,
    type         text        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, message_id)
);
CREATE INDEX inbox_processed_at ON inbox (processed_at);
