-- The audit trail: one row per message seen on snapdeploy.events and snapdeploy.commands.
-- Append-only; message_id is the dedupe key; id is the ingest sequence (the stable tiebreaker
-- of messages that share an occurred_at).
CREATE TABLE events (
    id               bigserial   PRIMARY KEY,
    message_id       uuid        NOT NULL UNIQUE,
    kind             text        NOT NULL CHECK (kind IN ('command', 'reply', 'event')),
    type             text        NOT NULL,
    schema_version   integer     NOT NULL,
    source           text        NOT NULL,
    exchange         text        NOT NULL,
    routing_key      text        NOT NULL,
    correlation_id   uuid,
    causation_id     uuid,
    occurred_at      timestamptz NOT NULL,
    recorded_at      timestamptz NOT NULL DEFAULT now(),
    actor_account_id uuid,
    actor_role       text,
    -- ActionEvent's account, else the actor's
    account_id       uuid,
    -- ActionEvent (CloudStack vocabulary); resource_* also for other events that name a resource
    event_type       text,
    state            text,        -- ActionEvent state, or the VcenterTask state
    level            text,
    resource_type    text,
    resource_id      uuid,
    resource_name    text,
    description      text,
    -- VcenterTask
    task_key         text,
    task_name        text,
    task_entity      text,
    task_started_at  timestamptz,
    task_completed_at timestamptz,
    duration_ms      bigint,
    -- <Command>Failed replies and failed vCenter tasks
    fault            text,
    error_code       integer,
    error_text       text,
    payload          jsonb       NOT NULL
);

CREATE INDEX events_correlation ON events (correlation_id, occurred_at, id) WHERE correlation_id IS NOT NULL;
CREATE INDEX events_resource ON events (resource_id, occurred_at, id) WHERE resource_id IS NOT NULL;
CREATE INDEX events_type ON events (type, occurred_at, id);
CREATE INDEX events_event_type ON events (event_type, occurred_at, id) WHERE event_type IS NOT NULL;
CREATE INDEX events_account ON events (account_id, occurred_at, id) WHERE account_id IS NOT NULL;
CREATE INDEX events_occurred ON events (occurred_at, id);

-- Rows older than the retention age, moved here by the retention job (AUDIT_RETENTION_MODE=archive).
CREATE TABLE events_archive (LIKE events);
ALTER TABLE events_archive ADD PRIMARY KEY (id);
ALTER TABLE events_archive ADD COLUMN archived_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX events_archive_occurred ON events_archive (occurred_at, id);
CREATE INDEX events_archive_correlation ON events_archive (correlation_id) WHERE correlation_id IS NOT NULL;

-- CloudStack-format copies of newly stored ActionEvents, written in the ingest transaction and
-- published to the cloudstack-events exchange by the audit's own relay. The body is CloudStack's
-- flat JSON map, not a snapdeploy envelope, so it cannot go through the shared outbox.
CREATE TABLE cloudstack_outbox (
    id          bigserial   PRIMARY KEY,
    message_id  uuid        NOT NULL,
    routing_key text        NOT NULL,
    body        bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
