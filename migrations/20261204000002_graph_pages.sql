-- Lists are paged by (project, name) with a keyset: one index serves every page at the same cost.
CREATE INDEX graphs_project_name_idx ON smo.graphs (project, name);
DROP INDEX smo.graphs_project_idx;
