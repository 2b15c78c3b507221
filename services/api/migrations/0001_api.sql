-- Accounts, their users and API keys (one ROOT domain), login sessions, async jobs.
CREATE TABLE accounts (
    uuid      uuid PRIMARY KEY,
    name      text        NOT NULL UNIQUE,
    role      text        NOT NULL CHECK (role IN ('admin', 'user')),
    domain_id uuid        NOT NULL,
    state     text        NOT NULL DEFAULT 'enabled',
    created   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    uuid          uuid PRIMARY KEY,
    account_uuid  uuid        NOT NULL REFERENCES accounts (uuid),
    username      text        NOT NULL UNIQUE,
    password_hash text,                 -- scrypt, never the password
    api_key       text UNIQUE,
    secret_enc    bytea,                -- the secret key, encrypted with API_ENCRYPTION_KEY
    state         text        NOT NULL DEFAULT 'enabled',
    created       timestamptz NOT NULL DEFAULT now()
);

-- Only digests of the session id (cookie) and session key (CSRF parameter) are stored.
CREATE TABLE sessions (
    id_digest  bytea PRIMARY KEY,
    key_digest bytea       NOT NULL,
    user_uuid  uuid        NOT NULL REFERENCES users (uuid),
    created    timestamptz NOT NULL DEFAULT now(),
    expires    timestamptz NOT NULL
);
CREATE INDEX sessions_expires ON sessions (expires);

-- CloudStack async jobs: the row follows the command's steps and terminal reply.
CREATE TABLE async_jobs (
    uuid          uuid PRIMARY KEY,     -- the jobid, and the correlation_id of every message of the job
    command_id    uuid        NOT NULL, -- message_id of the command the api sent
    account_uuid  uuid        NOT NULL,
    user_uuid     uuid        NOT NULL,
    cmd           text        NOT NULL, -- the API command, e.g. deployVirtualMachine
    instance_type text,
    instance_id   uuid,
    status        smallint    NOT NULL DEFAULT 0,  -- 0 pending, 1 succeeded, 2 failed
    result_code   integer     NOT NULL DEFAULT 0,
    result        jsonb,
    procstatus    integer     NOT NULL DEFAULT 0,  -- saga steps completed
    procstep      text,                            -- the step running now, in words
    created       timestamptz NOT NULL DEFAULT now(),
    completed     timestamptz
);
CREATE INDEX async_jobs_account ON async_jobs (account_uuid, created);
