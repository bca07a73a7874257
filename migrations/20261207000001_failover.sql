-- Failover: each member cluster's health as smo last saw it, its transitions, and where failover
-- moved services from, so fail-back can bring them home.

-- One row per cluster: its Ready condition and since when (transitions only move `since`).
CREATE TABLE smo.cluster_health (
    cluster   text PRIMARY KEY,
    ready     boolean NOT NULL,
    since     timestamptz NOT NULL,
    reason    text,
    lost_at   timestamptz            -- failover ran for it; cleared once it is back and failed back
);

-- The health history the console's clusters page and `smo cluster history` show.
CREATE TABLE smo.cluster_events (
    id       bigserial PRIMARY KEY,
    cluster  text NOT NULL,
    at       timestamptz NOT NULL,
    event    text NOT NULL CHECK (event IN ('ready', 'not-ready', 'lost', 'failover', 'recovered', 'failback')),
    message  text,
    data     jsonb NOT NULL DEFAULT '{}'   -- figures: a failover's solve time, moves, …
);
CREATE INDEX cluster_events_cluster_idx ON smo.cluster_events (cluster, id DESC);

-- A service failover moved: from `home` (the lost cluster) to `target`. Fail-back moves it home
-- and deletes the row; a graph removed takes its rows with it.
CREATE TABLE smo.failover_moves (
    graph_id  uuid NOT NULL REFERENCES smo.graphs(id) ON DELETE CASCADE,
    service   text NOT NULL,
    home      text NOT NULL,
    target    text NOT NULL,
    at        timestamptz NOT NULL,
    PRIMARY KEY (graph_id, service)
);
CREATE INDEX failover_moves_home_idx ON smo.failover_moves (home);
