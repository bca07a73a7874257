//! Names that become Kubernetes object names or namespaces: a graph, a project (= namespace), a
//! cluster. One rule for all of them — a DNS-1123 label — checked once, where a name enters
//! (descriptor, URL path, Karmada), so everything past that point holds a name that is valid by
//! its type.

use std::fmt;

/// Why `s` is not a DNS-1123 label (1–63 lowercase letters, digits or '-', starting and ending
/// with a letter or digit), or `None` when it is one.
pub fn dns_label_problem(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let bad = if s.is_empty() {
        "must not be empty"
    } else if s.len() > 63 {
        "must be at most 63 characters"
    } else if !b
        .iter()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
    {
        "may contain only lowercase letters, digits and '-'"
    } else if !b.first().is_some_and(u8::is_ascii_alphanumeric)
        || !b.last().is_some_and(u8::is_ascii_alphanumeric)
    {
        "must start and end with a letter or digit"
    } else {
        return None;
    };
    Some(format!("{} is not a DNS-1123 label: {bad}", super::q(s)))
}

/// A name that is not a DNS-1123 label, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NameError(pub String);

macro_rules! label_name {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The name, when `s` is a DNS-1123 label.
            pub fn parse(s: impl Into<String>) -> Result<Self, NameError> {
                let s = s.into();
                match dns_label_problem(&s) {
                    None => Ok(Self(s)),
                    Some(why) => Err(NameError(why)),
                }
            }

            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = NameError;
            fn try_from(s: String) -> Result<Self, NameError> {
                Self::parse(s)
            }
        }

        impl From<$name> for String {
            fn from(n: $name) -> String {
                n.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                self == &other.0
            }
        }

        impl PartialEq<$name> for str {
            fn eq(&self, other: &$name) -> bool {
                self == other.0
            }
        }
    };
}

label_name!(
    /// A graph's name (the descriptor's `id`), unique across projects.
    GraphName
);
label_name!(
    /// A project: the namespace a graph's objects live in.
    ProjectName
);
label_name!(
    /// A member cluster of the federation.
    ClusterName
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rule_for_every_name_checked_where_it_enters() {
        assert!(GraphName::parse("shop-2").is_ok());
        for bad in ["", "Shop", "-a", "a-", "a_b", &"a".repeat(64)] {
            let e = ProjectName::parse(bad).unwrap_err();
            assert!(e.0.contains("is not a DNS-1123 label"), "{bad}: {e}");
        }
        // Deserialising checks too: a name read from a job or a document is valid by its type.
        assert!(serde_json::from_str::<ClusterName>("\"edge-a\"").is_ok());
        assert!(serde_json::from_str::<ClusterName>("\"Edge A\"").is_err());
        let n = GraphName::parse("web").unwrap();
        assert_eq!(serde_json::to_string(&n).unwrap(), "\"web\"");
        assert_eq!(n, "web");
    }
}
