-- Hosts and guest networks from the agent's inventory; capacity reserved by deployments.
CREATE TABLE hosts (
    uuid              uuid PRIMARY KEY,
    zone_id           text    NOT NULL,
    ref               text    NOT NULL,
    name              text    NOT NULL,
    cluster           text,
    state             text    NOT NULL,
    cpu_mhz_total     integer NOT NULL,
    cpu_mhz_used      integer NOT NULL DEFAULT 0 CHECK (cpu_mhz_used >= 0),
    memory_bytes      bigint  NOT NULL,
    memory_used_bytes bigint  NOT NULL DEFAULT 0 CHECK (memory_used_bytes >= 0),
    pools             text[]  NOT NULL,
    networks          text[]  NOT NULL,
    UNIQUE (zone_id, ref)
);

CREATE TABLE networks (
    uuid    uuid PRIMARY KEY,
    zone_id text NOT NULL,
    name    text NOT NULL,
    ref     text NOT NULL,
    UNIQUE (zone_id, name)
);

-- The VMs vCenter had at the last sync, for adoption by ImportVirtualMachine.
CREATE TABLE vcenter_vms (
    zone_id text  NOT NULL,
    ref     text  NOT NULL,
    info    jsonb NOT NULL,
    PRIMARY KEY (zone_id, ref)
);

CREATE TABLE service_offerings (
    uuid          uuid PRIMARY KEY,
    name          text    NOT NULL,
    cpu_number    integer NOT NULL,
    cpu_speed_mhz integer NOT NULL,
    memory_mb     integer NOT NULL,
    created       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE instances (
    uuid                  uuid PRIMARY KEY,
    name                  text        NOT NULL UNIQUE,
    display_name          text,
    account_id            uuid        NOT NULL,
    zone_id               text        NOT NULL,
    state                 text        NOT NULL,
    host_uuid             uuid REFERENCES hosts (uuid),
    vm_ref                text,
    hypervisor            text        NOT NULL DEFAULT 'VMware',
    service_offering_id   uuid,
    vm_template_id        uuid,
    disk_offering_id      uuid,
    source_vm_snapshot_id uuid,
    root_volume_id        uuid,
    pool                  text,
    cpu_number            integer,
    cpu_speed_mhz         integer,
    memory_mb             integer,
    reserved              boolean     NOT NULL DEFAULT false,
    reason                text,
    created               timestamptz NOT NULL DEFAULT now(),
    updated               timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE nics (
    uuid          uuid PRIMARY KEY,
    instance_uuid uuid    NOT NULL REFERENCES instances (uuid),
    network_uuid  uuid    NOT NULL REFERENCES networks (uuid),
    device_order  integer NOT NULL,
    mac           text,
    state         text    NOT NULL,
    UNIQUE (instance_uuid, device_order)
);

CREATE TABLE vm_snapshots (
    uuid          uuid PRIMARY KEY,
    instance_uuid uuid        NOT NULL REFERENCES instances (uuid),
    account_id    uuid        NOT NULL,
    name          text        NOT NULL,
    description   text        NOT NULL DEFAULT '',
    parent_uuid   uuid,
    snapshot_ref  text,
    memory        boolean     NOT NULL DEFAULT false,
    state         text        NOT NULL,
    disks         jsonb,
    created       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX vm_snapshots_instance ON vm_snapshots (instance_uuid);

-- A process that spans several replies (a deployment, a snapshot, a power operation): its
-- state is committed at every step, so a restarted planner carries on where it was.
CREATE TABLE sagas (
    kind            text        NOT NULL,
    resource_id     uuid        NOT NULL,
    job_id          uuid,
    state           text        NOT NULL,
    step            text        NOT NULL,
    data            jsonb       NOT NULL DEFAULT '{}',
    awaiting        uuid,
    last_command    jsonb,
    resends         integer     NOT NULL DEFAULT 0,
    deadline        timestamptz,
    error_code      integer,
    error_text      text,
    created         timestamptz NOT NULL DEFAULT now(),
    updated         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, resource_id)
);
CREATE UNIQUE INDEX sagas_awaiting ON sagas (awaiting) WHERE awaiting IS NOT NULL;
CREATE INDEX sagas_deadline ON sagas (deadline) WHERE state IN ('running', 'compensating');
