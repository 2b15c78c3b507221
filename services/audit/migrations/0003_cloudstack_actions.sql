-- Who asked, as CloudStack names it (the `user` of a CloudStack event).
ALTER TABLE events ADD COLUMN actor_user_id uuid;
ALTER TABLE events_archive ADD COLUMN actor_user_id uuid;

-- One row per action (a job's event type on one resource), for the CloudStack republish: the
-- action's own description (CloudStack repeats it in every phase: "Successfully completed ...",
-- "Error while ..."), and whether it was closed, so that a job that fails closes what it left
-- open exactly once. The first action of a job is its main one (VM.CREATE of a deployment).
CREATE TABLE cloudstack_actions (
    id             bigserial   UNIQUE,
    correlation_id uuid        NOT NULL,
    event_type     text        NOT NULL,
    resource_id    uuid        NOT NULL,
    resource_type  text,
    resource_name  text,
    account_id     uuid,
    user_id        uuid,
    description    text        NOT NULL,
    closed         boolean     NOT NULL DEFAULT false,
    updated        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (correlation_id, event_type, resource_id)
);
CREATE INDEX cloudstack_actions_job ON cloudstack_actions (correlation_id, id);
CREATE INDEX cloudstack_actions_updated ON cloudstack_actions (updated);

-- The VM of each VM snapshot (CloudStack files VM snapshot events under their VM), learnt from
-- CreateVmSnapshot, its reply, ImportVirtualMachineSucceeded and RevertToVmSnapshotSucceeded.
CREATE TABLE cloudstack_vm_snapshots (
    vm_snapshot_id uuid        PRIMARY KEY,
    vm_id          uuid        NOT NULL,
    updated        timestamptz NOT NULL DEFAULT now()
);
