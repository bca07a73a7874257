//! The states a graph and its services are in, as the schema stores them: `text` columns whose
//! CHECKs list exactly the names smo-core's enums know (tested below).

// The kinds live in smo-core's model (the planner, the API and the console speak them too); the
// store binds them as text (`as_str`) and reads them back with `#[sqlx(try_from = "String")]`.
// Names (GraphName, ProjectName, ClusterName) are read the same way: checked on the way out of
// the database as on the way in from a request.
pub use smo_core::model::{Desired, GraphStatus, ServiceStatus};

#[cfg(test)]
mod tests {
    use super::*;

    /// The schema's CHECK constraints name exactly the states Rust knows.
    #[test]
    fn the_schema_allows_exactly_these_states() {
        let check = |schema: &str, column: &str| -> Vec<String> {
            let lines: Vec<&str> = schema.lines().collect();
            let at = lines
                .iter()
                .position(|l| l.contains(&format!("{column} ")) && l.contains("CHECK"))
                .unwrap_or_else(|| panic!("a CHECK on {column}"));
            let rest = lines[at..].join("\n");
            let list = &rest[rest.find("IN (").unwrap()..rest.find("))").unwrap()];
            list.split('\'')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect()
        };
        fn names<T: Copy>(all: &[T], name: fn(T) -> &'static str) -> Vec<String> {
            all.iter().map(|t| name(*t).to_string()).collect()
        }
        let graphs = include_str!("../../migrations/20261125000002_graphs.sql");
        let services = include_str!("../../migrations/20261205000001_service_status_check.sql");
        assert_eq!(
            check(graphs, "desired"),
            names(Desired::ALL, Desired::as_str)
        );
        assert_eq!(
            check(graphs, "status"),
            names(GraphStatus::ALL, GraphStatus::as_str)
        );
        assert_eq!(
            check(services, "status"),
            names(ServiceStatus::ALL, ServiceStatus::as_str)
        );
    }
}
