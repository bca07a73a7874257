-- Teams: API tokens scoped to projects with a role, and an audit log of every change.

-- A token is stored as a digest only: `smo_<prefix>_<secret>` is shown once at creation; the
-- prefix (not secret) finds the row, the SHA-256 of the whole token is compared in constant time.
CREATE TABLE smo.api_tokens (
    id            bigserial PRIMARY KEY,
    name          text NOT NULL UNIQUE,
    prefix        text NOT NULL UNIQUE,
    digest        bytea NOT NULL,
    role          text NOT NULL CHECK (role IN ('viewer', 'deployer', 'admin', 'alerts', 'metrics')),
    projects      text[],                -- NULL: every project
    expires_at    timestamptz,
    created_at    timestamptz NOT NULL,
    last_used_at  timestamptz,
    revoked_at    timestamptz
);

-- One row per change made through the API, the console, the webhook or smo-admin.
CREATE TABLE smo.audit_log (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL,
    token       text NOT NULL,           -- the token's name (never the token)
    source      text NOT NULL CHECK (source IN ('api', 'console', 'webhook', 'admin')),
    operation   text NOT NULL,           -- e.g. `POST /graphs/{name}/stop`, `tokens create`
    project     text,
    graph       text,
    request_id  text,
    status      integer NOT NULL,        -- the HTTP status answered (smo-admin: 0 ok, 1 failed)
    job_id      uuid,
    detail      text
);
CREATE INDEX audit_log_at_idx ON smo.audit_log (at);
CREATE INDEX audit_log_project_idx ON smo.audit_log (project, id DESC);
CREATE INDEX audit_log_token_idx ON smo.audit_log (token, id DESC);
