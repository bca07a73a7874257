-- Dead and cancelled jobs, newest first: the console's "needs attention" list and `smo-admin jobs
-- list --state dead` stay an index walk however many succeeded rows surround them.
CREATE INDEX jobs_rare_finished_idx ON smo_jobs.jobs (id) WHERE state IN ('dead', 'cancelled');
