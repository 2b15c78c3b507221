-- Disk offerings (admin-defined sizes a volume may be created with).
CREATE TABLE disk_offerings (
    uuid       uuid PRIMARY KEY,
    name       text        NOT NULL,
    size_bytes bigint CHECK (size_bytes IS NULL OR size_bytes > 0),  -- NULL: custom size
    created    timestamptz NOT NULL DEFAULT now()
);

-- Templates in vCenter (template VMs snapdeploy did not make itself) and the pool they occupy.
CREATE TABLE templates (
    uuid              uuid PRIMARY KEY,
    zone_id           text    NOT NULL,
    ref               text    NOT NULL,
    name              text    NOT NULL,
    pool_id           bigint  NOT NULL REFERENCES pools (id),
    size_bytes        bigint  NOT NULL,
    base_snapshot_ref text,
    UNIQUE (zone_id, ref)
);
