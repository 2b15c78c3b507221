-- Primary storage pools (datastores), from the agent's inventory. Figures in bytes.
CREATE TABLE pools (
    id              bigserial PRIMARY KEY,
    uuid            uuid        NOT NULL UNIQUE,
    zone_id         text        NOT NULL,
    name            text        NOT NULL,
    datastore_ref   text        NOT NULL,
    capacity_bytes  bigint      NOT NULL,
    free_bytes      bigint      NOT NULL,
    allocated_bytes bigint      NOT NULL DEFAULT 0 CHECK (allocated_bytes >= 0),
    hosts           text[]      NOT NULL,
    synced_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (zone_id, name)
);

-- VMs and VM snapshots as the planner announces them (storage's own view).
CREATE TABLE vms (
    uuid       uuid PRIMARY KEY,
    account_id uuid NOT NULL,
    zone_id    text NOT NULL,
    vm_ref     text NOT NULL,
    name       text NOT NULL,
    hypervisor text NOT NULL
);

CREATE TABLE vm_snapshots (
    id          bigserial PRIMARY KEY,
    uuid        uuid        NOT NULL UNIQUE,
    vm_uuid     uuid        NOT NULL,
    account_id  uuid        NOT NULL,
    zone_id     text        NOT NULL,
    vm_ref      text        NOT NULL,
    snapshot_ref text       NOT NULL,
    name        text        NOT NULL,
    hypervisor  text        NOT NULL,
    disks       jsonb       NOT NULL,
    removed     timestamptz
);
CREATE INDEX vm_snapshots_vm ON vm_snapshots (vm_uuid) WHERE removed IS NULL;

CREATE TABLE volumes (
    id                    bigserial PRIMARY KEY,
    uuid                  uuid        NOT NULL UNIQUE,
    name                  text        NOT NULL,
    type                  text        NOT NULL CHECK (type IN ('ROOT', 'DATADISK')),
    state                 text        NOT NULL,
    size_bytes            bigint      NOT NULL,
    pool_id               bigint      NOT NULL REFERENCES pools (id),
    vm_uuid               uuid,
    device_key            integer,
    device_id             integer,
    disk_path             text,
    disk_offering_id      uuid,
    template_id           uuid,
    iso_id                uuid,
    source_vm_snapshot_id uuid,
    seed_id               bigint,
    counted_bytes         bigint      NOT NULL DEFAULT 0,
    reason                text,
    created               timestamptz NOT NULL DEFAULT now(),
    updated               timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX volumes_vm ON volumes (vm_uuid);
CREATE INDEX volumes_collectable ON volumes (state, updated) WHERE state IN ('Error', 'Destroy');

-- The spec's table (DB changes), column for column; plus the vCenter refs the clone needs.
CREATE TABLE vm_snapshot_spool_ref (
    id                bigserial PRIMARY KEY,
    uuid              varchar(40),
    pool_id           bigint       NOT NULL REFERENCES pools (id),
    vm_snapshot_id    bigint       NOT NULL REFERENCES vm_snapshots (id),
    created           timestamptz  NOT NULL,
    job_id            varchar(255),
    state             varchar(255),
    status            varchar(255),
    install_path      varchar(255),
    template_size     bigint       NOT NULL,
    marked_for_gc     boolean      NOT NULL DEFAULT false,
    template_ref      varchar(255),
    base_snapshot_ref varchar(255),
    updated           timestamptz  NOT NULL DEFAULT now()
);
-- One live seed per (snapshot, pool); a failed one (Error) does not block a new attempt.
CREATE UNIQUE INDEX vm_snapshot_spool_ref_live ON vm_snapshot_spool_ref (vm_snapshot_id, pool_id)
    WHERE state IN ('Allocated', 'Creating', 'Ready');

-- Agent commands this service sent and whose replies it waits for.
CREATE TABLE agent_calls (
    message_id  uuid PRIMARY KEY,
    operation   text        NOT NULL,
    resource_id uuid        NOT NULL,
    detail      jsonb       NOT NULL DEFAULT '{}',
    created     timestamptz NOT NULL DEFAULT now()
);
