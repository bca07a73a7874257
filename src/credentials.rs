//! Credentials for the HTTP services smo calls: OCI registries, Prometheus and Grafana.
//!
//! One type for all three, so they read settings the same way (a token wins; a user needs a
//! password), send them the same way, and never print a secret in a log line.

/// A configured secret (a token or password). It cannot print: `Debug` shows `***`, there is no
/// `Display`, and serialising it writes `***` too — except inside [`Secret::revealing`], which
/// the two places that must store the value (the config file writer and the environment
/// overlay) use. A new secret setting is safe by its type, not by a list someone must update.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

thread_local! {
    static REVEAL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

impl Secret {
    /// A secret from its text.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for the one call that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Runs `f` with secrets serialising to their values (on this thread only).
    pub fn revealing<T>(f: impl FnOnce() -> T) -> T {
        struct Reset(bool);
        impl Drop for Reset {
            fn drop(&mut self) {
                REVEAL.set(self.0);
            }
        }
        let _reset = Reset(REVEAL.replace(true));
        f()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if REVEAL.get() {
            s.serialize_str(&self.0)
        } else {
            s.serialize_str("***")
        }
    }
}

/// The value of an optional secret, for the call that sends it.
pub fn exposed(secret: &Option<Secret>) -> Option<&str> {
    secret.as_ref().map(Secret::expose)
}

/// How smo authenticates to a registry, Prometheus or Grafana. [`std::fmt::Debug`] redacts
/// secrets.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Credentials {
    /// Anonymous (public repositories, an open Prometheus, the sim).
    #[default]
    None,
    /// User and password: HTTP Basic (Prometheus's `--web.config.file`, Grafana users, registry
    /// logins, also sent to a registry's token server on a Bearer challenge).
    Basic {
        /// User name.
        user: String,
        /// Password or access token.
        password: String,
    },
    /// A ready bearer token, sent as is (Grafana service accounts, auth proxies, registries).
    Bearer(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::Basic { user, .. } => write!(f, "Basic {{ user: {user:?}, password: *** }}"),
            Self::Bearer(_) => f.write_str("Bearer(***)"),
        }
    }
}

impl Credentials {
    /// From configured parts: a token wins; a user needs a password; nothing set means none.
    /// Empty values (an unset Secret key rendered as "") count as unset.
    pub fn from_parts(
        token: Option<&str>,
        user: Option<&str>,
        password: Option<&str>,
    ) -> Result<Self, String> {
        let nonempty = |v: Option<&str>| v.filter(|s| !s.is_empty()).map(str::to_string);
        match (nonempty(token), nonempty(user), nonempty(password)) {
            (Some(t), _, _) => Ok(Self::Bearer(t)),
            (None, Some(user), Some(password)) => Ok(Self::Basic { user, password }),
            (None, Some(_), None) => Err("a user is set but no password".into()),
            (None, None, Some(_)) => Err("a password is set but no user".into()),
            (None, None, None) => Ok(Self::None),
        }
    }

    /// Adds the credentials to a request.
    pub fn apply(&self, r: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            Self::None => r,
            Self::Basic { user, password } => r.basic_auth(user, Some(password)),
            Self::Bearer(t) => r.bearer_auth(t),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Credentials, Secret};

    #[test]
    fn a_secret_prints_and_serialises_masked_unless_revealed_for_storage() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"***\"");
        let stored = Secret::revealing(|| serde_json::to_string(&s).unwrap());
        assert_eq!(stored, "\"hunter2\"");
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            "\"***\"",
            "masked again after the scope"
        );
        let back: Secret = serde_json::from_str(&stored).unwrap();
        assert_eq!(back.expose(), "hunter2");
    }

    #[test]
    fn credentials_from_parts_prefer_a_token_and_refuse_half_pairs() {
        assert_eq!(
            Credentials::from_parts(Some("t"), Some("u"), Some("p")),
            Ok(Credentials::Bearer("t".into()))
        );
        assert_eq!(
            Credentials::from_parts(None, Some("u"), Some("p")),
            Ok(Credentials::Basic {
                user: "u".into(),
                password: "p".into()
            })
        );
        assert_eq!(
            Credentials::from_parts(Some(""), None, Some("")),
            Ok(Credentials::None)
        );
        assert!(
            Credentials::from_parts(None, Some("u"), None)
                .unwrap_err()
                .contains("no password")
        );
        assert!(
            Credentials::from_parts(None, None, Some("p"))
                .unwrap_err()
                .contains("no user")
        );
    }

    #[test]
    fn debug_output_never_shows_a_secret() {
        let basic = Credentials::Basic {
            user: "smo".into(),
            password: "hunter2".into(),
        };
        let shown = format!("{basic:?} {:?}", Credentials::Bearer("tok3n".into()));
        assert!(
            !shown.contains("hunter2") && !shown.contains("tok3n"),
            "{shown}"
        );
        assert!(shown.contains("smo"));
    }
}
