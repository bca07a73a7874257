-- smo's own tables live in schema `smo`; the job engine keeps its own in `smo_jobs`.
CREATE SCHEMA IF NOT EXISTS smo;
