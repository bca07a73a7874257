-- Finished jobs counted as they finish, so that stats (smo-admin stats, the console's queue page,
-- apalis-board) need not count millions of rows: a statement-level trigger folds every insert,
-- update and delete of a finished row (succeeded, dead, cancelled) into one row per kind × state.
-- Live states (queued, retrying, running) stay counted from the table: few rows, partial indexes.
CREATE TABLE smo_jobs.finished_counts (
    kind text NOT NULL,
    state text NOT NULL CHECK (state IN ('succeeded', 'dead', 'cancelled')),
    n bigint NOT NULL,
    PRIMARY KEY (kind, state)
);

-- Upserts in (kind, state) order, so concurrent statements lock counter rows in one order and
-- never deadlock.
CREATE FUNCTION smo_jobs.count_finished() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO smo_jobs.finished_counts (kind, state, n)
        SELECT kind, state, count(*) FROM new_rows
         WHERE state IN ('succeeded', 'dead', 'cancelled')
         GROUP BY kind, state ORDER BY kind, state
        ON CONFLICT (kind, state) DO UPDATE SET n = smo_jobs.finished_counts.n + EXCLUDED.n;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO smo_jobs.finished_counts (kind, state, n)
        SELECT kind, state, -count(*) FROM old_rows
         WHERE state IN ('succeeded', 'dead', 'cancelled')
         GROUP BY kind, state ORDER BY kind, state
        ON CONFLICT (kind, state) DO UPDATE SET n = smo_jobs.finished_counts.n + EXCLUDED.n;
    ELSE
        INSERT INTO smo_jobs.finished_counts (kind, state, n)
        SELECT kind, state, sum(d) FROM (
            SELECT kind, state, 1 AS d FROM new_rows WHERE state IN ('succeeded', 'dead', 'cancelled')
            UNION ALL
            SELECT kind, state, -1 FROM old_rows WHERE state IN ('succeeded', 'dead', 'cancelled')
        ) x
         GROUP BY kind, state HAVING sum(d) <> 0 ORDER BY kind, state
        ON CONFLICT (kind, state) DO UPDATE SET n = smo_jobs.finished_counts.n + EXCLUDED.n;
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION smo_jobs.clear_finished_counts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM smo_jobs.finished_counts;
    RETURN NULL;
END $$;

-- No write may slip between the count below and the triggers.
LOCK TABLE smo_jobs.jobs IN SHARE ROW EXCLUSIVE MODE;

INSERT INTO smo_jobs.finished_counts (kind, state, n)
SELECT kind, state, count(*) FROM smo_jobs.jobs
 WHERE state IN ('succeeded', 'dead', 'cancelled')
 GROUP BY kind, state;

CREATE TRIGGER jobs_count_finished_insert AFTER INSERT ON smo_jobs.jobs
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION smo_jobs.count_finished();
CREATE TRIGGER jobs_count_finished_update AFTER UPDATE ON smo_jobs.jobs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION smo_jobs.count_finished();
CREATE TRIGGER jobs_count_finished_delete AFTER DELETE ON smo_jobs.jobs
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION smo_jobs.count_finished();
CREATE TRIGGER jobs_count_finished_truncate AFTER TRUNCATE ON smo_jobs.jobs
    FOR EACH STATEMENT EXECUTE FUNCTION smo_jobs.clear_finished_counts();
