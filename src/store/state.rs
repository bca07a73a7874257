//! The states a graph and its services are in, typed: Rust and SQL name them through one table
//! each, so a misspelt state cannot compile and an unknown one read from the database is an error
//! instead of a silent mismatch. Stored as `text` (the schema's CHECKs list the same names).

use sqlx::{
    Decode, Encode, Postgres, Type,
    encode::IsNull,
    error::BoxDynError,
    postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef},
};

macro_rules! stored_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $text)] $variant,)*
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The stored (and wire) name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)*
                    other => Err(format!("{other:?} is not a {}", stringify!($name))),
                }
            }
        }

        text_column!($name, |text: &str| text.parse::<$name>());
    };
}

/// A type stored as `text`: written as its `as_str`, read back through `parse` (so a value the
/// type does not accept is an error, not a silent mismatch).
macro_rules! text_column {
    ($name:ty, $parse:expr) => {
        impl Type<Postgres> for $name {
            fn type_info() -> PgTypeInfo {
                <&str as Type<Postgres>>::type_info()
            }
            fn compatible(ty: &PgTypeInfo) -> bool {
                <&str as Type<Postgres>>::compatible(ty)
            }
        }

        impl Encode<'_, Postgres> for $name {
            fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
                <&str as Encode<Postgres>>::encode_by_ref(&self.as_str(), buf)
            }
        }

        impl<'r> Decode<'r, Postgres> for $name {
            fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
                let text = <&str as Decode<Postgres>>::decode(value)?;
                Ok(($parse)(text)?)
            }
        }
    };
}

// Names (smo-core's GraphName, ProjectName, ClusterName) are bound as text and read back
// through `#[sqlx(try_from = "String")]`: checked on the way out of the database as on the way in
// from a request.

stored_enum!(
    /// What the user asked a graph to be.
    Desired {
        /// Deployed and running.
        Running = "running",
        /// Kept, but its workloads removed.
        Stopped = "stopped",
        /// Gone.
        Removed = "removed",
    }
);

stored_enum!(
    /// What the last job of a graph achieved (the reference's names).
    GraphStatus {
        /// Stored, waiting for its deploy job.
        Pending = "Pending",
        /// A deploy job is applying it.
        Deploying = "Deploying",
        /// Every non-conditional service is applied.
        Running = "Running",
        /// A stop job is removing its workloads.
        Stopping = "Stopping",
        /// Workloads removed; the graph is kept.
        Stopped = "Stopped",
        /// A remove job is deleting it.
        Removing = "Removing",
        /// The last job failed; see `status_message` and the job.
        Failed = "Failed",
    }
);

stored_enum!(
    /// Where one service is.
    ServiceStatus {
        /// Not applied: waiting for its graph's deploy, or a conditional service whose event
        /// has not fired.
        Pending = "Pending",
        /// Applied; not every replica ready yet (or a Helm release, whose pods smo does not
        /// watch).
        Deployed = "Deployed",
        /// Every replica ready when last observed.
        Running = "Running",
        /// Its graph was stopped.
        Stopped = "Stopped",
        /// Its deploy failed.
        Failed = "Failed",
    }
);

impl ServiceStatus {
    /// What the federation reports for a native service (desired, ready replicas).
    pub fn observed(observed: Option<(i32, i32)>) -> ServiceStatus {
        match observed {
            Some((want, ready)) if ready >= want => ServiceStatus::Running,
            Some(_) => ServiceStatus::Deployed,
            None => ServiceStatus::Pending,
        }
    }

    /// Whether its objects are meant to be in the federation now.
    pub fn is_deployed(self) -> bool {
        !matches!(self, ServiceStatus::Pending | ServiceStatus::Stopped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_errors() {
        for s in GraphStatus::ALL {
            assert_eq!(s.as_str().parse::<GraphStatus>().unwrap(), *s);
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for s in ServiceStatus::ALL {
            assert_eq!(s.as_str().parse::<ServiceStatus>().unwrap(), *s);
        }
        for d in Desired::ALL {
            assert_eq!(d.as_str().parse::<Desired>().unwrap(), *d);
        }
        assert!("running".parse::<GraphStatus>().is_err());
        assert!("Running".parse::<Desired>().is_err());
    }

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
