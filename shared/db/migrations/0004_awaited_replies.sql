-- Commands this service sent and whose replies it waits for: what each was for (shared/db/awaited.py).
CREATE TABLE awaited_replies (
    message_id  uuid PRIMARY KEY,
    operation   text        NOT NULL,
    resource_id uuid        NOT NULL,
    detail      jsonb       NOT NULL DEFAULT '{}',
    created     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX awaited_replies_resource ON awaited_replies (resource_id, operation);
