-- Templates found in vCenter (template VMs snapdeploy did not make itself); deployments
-- linked-clone them from their base snapshot, like seeds.
CREATE TABLE templates (
    uuid              uuid PRIMARY KEY,
    zone_id           text    NOT NULL,
    ref               text    NOT NULL,
    name              text    NOT NULL,
    base_snapshot_ref text,
    pool              text    NOT NULL,
    root_size         bigint  NOT NULL,
    cpu_number        integer NOT NULL,
    memory_mb         integer NOT NULL,
    guest_id          text,
    UNIQUE (zone_id, ref)
);
