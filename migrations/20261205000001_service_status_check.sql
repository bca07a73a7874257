-- Service states are typed in Rust (store::ServiceStatus); the schema now checks them too, as it
-- has always checked a graph's `desired` and `status`.
ALTER TABLE smo.services ADD CONSTRAINT services_status_check
    CHECK (status IN ('Pending', 'Deployed', 'Running', 'Stopped', 'Failed'));
