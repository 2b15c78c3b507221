-- The VM's current snapshot, as vCenter says (the parent of the next one taken).
ALTER TABLE vm_snapshots ADD COLUMN current boolean NOT NULL DEFAULT false;
