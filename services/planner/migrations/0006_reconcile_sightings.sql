-- Reconciliation's grace periods: when each finding was first seen, so a restart carries on.
CREATE TABLE reconcile_sightings (
    scope       text             NOT NULL,  -- e.g. vm:zone1, stuck:zone1
    key         text             NOT NULL,  -- the finding's id
    first_seen  double precision NOT NULL,  -- epoch seconds, by the database's clock
    PRIMARY KEY (scope, key)
);
