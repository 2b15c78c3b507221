-- Commands whose reply comes later (when another service's reply arrives): who to answer, and how.
CREATE TABLE pending_replies (
    id             bigserial PRIMARY KEY,
    resource_id    text        NOT NULL,
    operation      text        NOT NULL,
    message_id     uuid        NOT NULL,
    command        text        NOT NULL,
    correlation_id uuid,
    actor          jsonb       NOT NULL,
    reply_to       text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (message_id, resource_id, operation)
);
CREATE INDEX pending_replies_resource ON pending_replies (resource_id, operation);
