CREATE TABLE effects (
    id         bigserial PRIMARY KEY,
    key        text NOT NULL,
    message_id uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
