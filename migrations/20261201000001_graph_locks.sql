-- One job per graph at a time, without holding a transaction across network calls: the lock is a
-- row naming the job that holds it, and it is free once that job is no longer running (finished,
-- snoozed, or reaped after its worker died), so a crashed holder never wedges a graph. Keyed by
-- name, not id: removal locks a graph whose row it is about to delete.
CREATE TABLE smo.graph_locks (
    graph      text PRIMARY KEY,
    job_id     uuid NOT NULL,
    locked_at  timestamptz NOT NULL
);
