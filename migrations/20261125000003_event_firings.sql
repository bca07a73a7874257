-- Events currently firing for pending conditional services, as Alertmanager reported them. A
-- `condition: ALL` service deploys once every one of its events has a row; a `resolved`
-- notification deletes the row. Rows go when the service deploys or the graph is removed.
CREATE TABLE smo.event_firings (
    graph_id   uuid NOT NULL REFERENCES smo.graphs(id) ON DELETE CASCADE,
    service    text NOT NULL,
    event      text NOT NULL,
    fired_at   timestamptz NOT NULL,
    PRIMARY KEY (graph_id, service, event)
);
