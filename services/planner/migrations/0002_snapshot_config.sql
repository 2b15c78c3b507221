-- The VM's configuration at the snapshot (vCPUs, memory, disks), read when the snapshot is
-- taken or adopted, so a deployment's offering is checked before anything is created.
ALTER TABLE vm_snapshots ADD COLUMN config jsonb;
