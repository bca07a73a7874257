-- The fencing token of an attempt: raised by every claim, so an attempt that lost its job (its
-- worker was declared lost and another worker claimed the job again) can no longer acknowledge,
-- fail, snooze or pass `JobContext::fence`. `attempt` cannot serve: it is given back on a loss.
ALTER TABLE smo_jobs.jobs ADD COLUMN epoch bigint NOT NULL DEFAULT 0;
