-- Projects group graphs; the project is also the Kubernetes namespace of its graphs.
CREATE TABLE smo.projects (
    name        text PRIMARY KEY,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per application graph. `desired` is what the user asked for; `status` what the last job
-- achieved. Graph names are unique across projects because the reference's routes
-- (`/graphs/{name}`) address graphs by name alone.
CREATE TABLE smo.graphs (
    id              uuid PRIMARY KEY,
    project         text NOT NULL REFERENCES smo.projects(name),
    name            text NOT NULL UNIQUE,
    version         text NOT NULL,
    revision        integer NOT NULL DEFAULT 1,
    descriptor      jsonb NOT NULL,              -- the validated graph
    source          text NOT NULL,               -- the descriptor as uploaded (YAML or JSON)
    desired         text NOT NULL CHECK (desired IN ('running', 'stopped', 'removed')),
    status          text NOT NULL CHECK (status IN ('Pending', 'Deploying', 'Running', 'Stopping',
                                                    'Stopped', 'Removing', 'Failed')),
    status_message  text,
    placement       jsonb NOT NULL DEFAULT '{}', -- service -> cluster
    dashboards      jsonb NOT NULL DEFAULT '{}', -- name -> URL
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);
CREATE INDEX graphs_project_idx ON smo.graphs (project);

CREATE TABLE smo.services (
    graph_id     uuid NOT NULL REFERENCES smo.graphs(id) ON DELETE CASCADE,
    name         text NOT NULL,
    position     integer NOT NULL,               -- order in the descriptor
    status       text NOT NULL,                  -- Pending | Deployed | Running | Stopped | Failed
    cluster      text,
    replicas     integer NOT NULL DEFAULT 1,
    ready        integer NOT NULL DEFAULT 0,
    conditional  boolean NOT NULL DEFAULT false, -- trigger.event: deployed when its alert fires
    cpu_millis   bigint NOT NULL,
    memory_bytes bigint NOT NULL,
    gpu          boolean NOT NULL,
    updated_at   timestamptz NOT NULL,
    PRIMARY KEY (graph_id, name)
);

-- Member clusters as last read from Karmada.
CREATE TABLE smo.clusters (
    name                text PRIMARY KEY,
    ready               boolean NOT NULL,
    cpu_allocatable     double precision NOT NULL,  -- cores
    cpu_free            double precision NOT NULL,
    memory_allocatable  bigint NOT NULL,            -- bytes
    memory_free         bigint NOT NULL,
    gpus                integer NOT NULL,
    labels              jsonb NOT NULL DEFAULT '{}',
    message             text,
    synced_at           timestamptz NOT NULL
);

-- Jobs enqueued for a graph, written in the same transaction as the enqueue.
CREATE TABLE smo.graph_jobs (
    graph       text NOT NULL,
    job_id      uuid NOT NULL,
    kind        text NOT NULL,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (graph, job_id)
);

-- Append-only audit trail: every placement, deploy, scaling and removal step with its inputs and
-- outcome. Keyed by graph name (not id) so that it outlives the graph.
CREATE TABLE smo.decisions (
    id        bigserial PRIMARY KEY,
    graph     text NOT NULL,
    project   text NOT NULL,
    kind      text NOT NULL,
    job_id    uuid,
    message   text NOT NULL,
    inputs    jsonb NOT NULL DEFAULT '{}',
    outcome   jsonb NOT NULL DEFAULT '{}',
    at        timestamptz NOT NULL
);
CREATE INDEX decisions_graph_idx ON smo.decisions (graph, id);
