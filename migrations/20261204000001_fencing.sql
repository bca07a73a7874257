-- Fencing. A graph's lock names the attempt that holds it (job and epoch), so a superseded
-- attempt of the same job no longer holds it, and each acquisition draws a fencing token from one
-- sequence: later holders of a graph's lock always carry higher tokens. The token is stamped on
-- every object smo applies (annotation smo.io/fence), where the federation can refuse a write
-- carrying a lower one than the object already has.
ALTER TABLE smo.graph_locks
    ADD COLUMN epoch bigint NOT NULL DEFAULT 0,
    ADD COLUMN fence bigint NOT NULL DEFAULT 0;
CREATE SEQUENCE smo.graph_fence;
