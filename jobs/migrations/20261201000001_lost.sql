-- Attempts lost to dead workers (SIGKILL, a node gone, a lapsed lease) are counted apart from the
-- attempts meant for the job's own errors: a crash-looping fleet must not burn a job's retries.
ALTER TABLE smo_jobs.jobs ADD COLUMN lost integer NOT NULL DEFAULT 0;
