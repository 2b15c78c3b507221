-- Broker users that are not snapdeploy services, and the account and role each acts as on the bus.
-- The planner owns the rows; every other service keeps a copy from BusPrincipalChanged events.
CREATE TABLE bus_principals (
    broker_user text        PRIMARY KEY,
    account_id  uuid,
    role        text        CHECK (role IN ('admin', 'user')),
    removed     boolean     NOT NULL DEFAULT false,
    version     bigint      NOT NULL,
    changed_at  timestamptz NOT NULL DEFAULT now()
);
