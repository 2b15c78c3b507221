-- A blank volume (createVolume) has neither a VM nor a VM snapshot to take its account from:
-- its owner is recorded on the row. NULL for the others (their owner is their VM's or snapshot's).
ALTER TABLE volumes ADD COLUMN account_id uuid;
