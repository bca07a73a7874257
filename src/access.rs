//! `access`: who may do what. Roles, the grant each route needs, the caller a request carries,
//! and the token format. Pure: the store keeps tokens, `http` asks [`Caller::allows`].
//!
//! A token reads `smo_<prefix>_<secret>`: the prefix (12 hex digits, not secret) finds its row;
//! only the SHA-256 of the whole token is stored and compared, in constant time. The configured
//! `api_token` is the bootstrap admin, named [`BOOTSTRAP`].

use std::fmt;

use serde::Serialize;
use sha2::{Digest, Sha256};

/// The name the configured `api_token` acts under.
pub const BOOTSTRAP: &str = "api_token";
/// The name every request acts under when the server has no token (authentication off).
pub const ANONYMOUS: &str = "anonymous";

/// What a token may do. `viewer` ⊂ `deployer` ⊂ `admin` within the token's projects; `alerts` and
/// `metrics` are single-purpose roles for the Alertmanager webhook and the metrics scraper.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads: graphs, their jobs and history, clusters.
    Viewer,
    /// Reads, and deploy, start, stop, re-place, remove.
    Deployer,
    /// Everything, in every project: clusters, the queue, the audit log, tokens.
    Admin,
    /// `POST /alerts` only.
    Alerts,
    /// `GET /metrics` only.
    Metrics,
}

impl Role {
    /// Every role, in the order tables list them.
    pub const ALL: [Role; 5] = [
        Role::Viewer,
        Role::Deployer,
        Role::Admin,
        Role::Alerts,
        Role::Metrics,
    ];

    /// The role's name, as stored and as typed.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Deployer => "deployer",
            Role::Admin => "admin",
            Role::Alerts => "alerts",
            Role::Metrics => "metrics",
        }
    }

    /// Parses a role's name.
    pub fn parse(s: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!("unknown role {s:?}; expected viewer, deployer, admin, alerts or metrics")
            })
    }

    /// True when the role is scoped to projects (viewer, deployer); the others are not.
    pub fn is_scoped(self) -> bool {
        matches!(self, Role::Viewer | Role::Deployer)
    }

    /// True when this role grants `need` (projects aside).
    pub fn grants(self, need: Need) -> bool {
        match need {
            Need::Open | Need::Token => true,
            Need::Read => matches!(self, Role::Viewer | Role::Deployer | Role::Admin),
            Need::Deploy => matches!(self, Role::Deployer | Role::Admin),
            Need::Admin => self == Role::Admin,
            Need::Alerts => matches!(self, Role::Alerts | Role::Admin),
            Need::Metrics => matches!(self, Role::Metrics | Role::Admin),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The grant a route needs, declared beside it in the route table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// No token at all (health checks, the console's sign-in page).
    Open,
    /// Any valid token (the API document, `whoami`).
    Token,
    /// `viewer` of the project (or better).
    Read,
    /// `deployer` of the project (or admin).
    Deploy,
    /// `admin`.
    Admin,
    /// `alerts` (or admin).
    Alerts,
    /// `metrics` (or admin).
    Metrics,
}

impl Need {
    /// The least role that grants it, as a problem or the OpenAPI document names it.
    pub fn role(self) -> Option<Role> {
        match self {
            Need::Open | Need::Token => None,
            Need::Read => Some(Role::Viewer),
            Need::Deploy => Some(Role::Deployer),
            Need::Admin => Some(Role::Admin),
            Need::Alerts => Some(Role::Alerts),
            Need::Metrics => Some(Role::Metrics),
        }
    }

    /// The roles that hold this grant, for the OpenAPI document.
    pub fn roles(self) -> Vec<Role> {
        Role::ALL.into_iter().filter(|r| r.grants(self)).collect()
    }

    /// True when the grant is a change (audited), false for reads.
    pub fn is_change(self) -> bool {
        matches!(self, Need::Deploy | Need::Admin | Need::Alerts)
    }
}

/// The projects a token acts in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Projects {
    /// Every project, present and future.
    All,
    /// Only these.
    Only(Vec<String>),
}

impl Projects {
    /// True when `project` is one of them.
    pub fn has(&self, project: &str) -> bool {
        match self {
            Projects::All => true,
            Projects::Only(ps) => ps.iter().any(|p| p == project),
        }
    }

    /// The list, or `None` for every project (a store filter).
    pub fn list(&self) -> Option<&[String]> {
        match self {
            Projects::All => None,
            Projects::Only(ps) => Some(ps),
        }
    }
}

impl fmt::Display for Projects {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Projects::All => f.write_str("*"),
            Projects::Only(ps) => f.write_str(&ps.join(",")),
        }
    }
}

/// Who a request acts as: a token's name, role and projects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Caller {
    /// The token's name (`api_token` for the bootstrap admin, `anonymous` without auth).
    pub name: String,
    /// Its role.
    pub role: Role,
    /// The projects it acts in (every project for admin, alerts and metrics).
    pub projects: Projects,
}

/// Why a caller may not: the grant it lacks, worded for a 403 problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    /// The role the route needs.
    pub needs: Option<Role>,
    /// The project it lacks, when the role was right but the project not.
    pub project: Option<String>,
    /// The caller's own description (`ci-a`, deployer of a).
    pub caller: String,
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let needs = self.needs.map_or("a token", Role::as_str);
        match &self.project {
            Some(p) => write!(
                f,
                "{} may not do this: it needs the grant {needs} on project {p:?}",
                self.caller
            ),
            None => write!(
                f,
                "{} may not do this: it needs the grant {needs}",
                self.caller
            ),
        }
    }
}

impl Caller {
    /// The bootstrap admin (`api_token`), or everyone when the server has no token.
    pub fn admin(name: &str) -> Caller {
        Caller {
            name: name.into(),
            role: Role::Admin,
            projects: Projects::All,
        }
    }

    /// `name (role of projects)`, for problems and pages.
    pub fn describe(&self) -> String {
        match (&self.projects, self.role.is_scoped()) {
            (Projects::Only(ps), true) => {
                format!("token {:?} ({} of {})", self.name, self.role, ps.join(", "))
            }
            _ => format!("token {:?} ({})", self.name, self.role),
        }
    }

    /// May this caller do what `need` names, in `project` when the route has one?
    pub fn allows(&self, need: Need, project: Option<&str>) -> Result<(), Denied> {
        let denied = |project: Option<&str>| Denied {
            needs: need.role(),
            project: project.map(str::to_string),
            caller: self.describe(),
        };
        if !self.role.grants(need) {
            return Err(denied(None));
        }
        match project {
            Some(p) if self.role.is_scoped() && !self.projects.has(p) => Err(denied(Some(p))),
            _ => Ok(()),
        }
    }

    /// True when the caller sees every project (lists need no filter).
    pub fn sees_all(&self) -> bool {
        !self.role.is_scoped() || self.projects == Projects::All
    }
}

/// A token's parts as presented: its prefix and the digest of the whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presented {
    /// The non-secret prefix that finds the row.
    pub prefix: String,
    /// SHA-256 of the whole token.
    pub digest: [u8; 32],
}

/// Length of a token's prefix, in hex digits.
const PREFIX_LEN: usize = 12;
/// Length of a token's secret, in hex digits (160 bits).
const SECRET_LEN: usize = 40;

/// The SHA-256 of a token: what is stored and compared.
pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A new token and its parts: the token is shown once and never stored.
pub fn new_token() -> (String, Presented) {
    use rand::Rng as _;
    let mut rng = rand::rng();
    let hex = |n: usize, rng: &mut rand::rngs::ThreadRng| -> String {
        (0..n)
            .map(|_| char::from_digit(rng.random_range(0..16), 16).expect("a hex digit"))
            .collect()
    };
    let prefix = hex(PREFIX_LEN, &mut rng);
    let token = format!("smo_{prefix}_{}", hex(SECRET_LEN, &mut rng));
    let digest = digest(&token);
    (token, Presented { prefix, digest })
}

/// Reads a presented token of smo's own format; `None` for anything else (the bootstrap token
/// is compared as it is).
pub fn presented(token: &str) -> Option<Presented> {
    let rest = token.strip_prefix("smo_")?;
    let (prefix, secret) = rest.split_once('_')?;
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(prefix, PREFIX_LEN) && hex(secret, SECRET_LEN)).then(|| Presented {
        prefix: prefix.to_ascii_lowercase(),
        digest: digest(token),
    })
}

/// Compares without an early exit, so timing does not tell how much of a guess was right.
pub fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The console's session cookie for a token with this stored digest: `prefix.mac`. The cookie
/// holds no token and nothing that works as one against the API; revoking or rotating the token
/// ends the session, because the row (or the bootstrap digest) it is checked against is gone.
pub fn session_cookie(prefix: &str, digest: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(b"smo-console-session\0");
    h.update(digest);
    let mac: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}.{mac}")
}

/// Splits a session cookie into its prefix and mac.
pub fn session_parts(cookie: &str) -> Option<(&str, &str)> {
    cookie.split_once('.')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(role: Role, projects: &[&str]) -> Caller {
        Caller {
            name: "t".into(),
            role,
            projects: if projects.is_empty() {
                Projects::All
            } else {
                Projects::Only(projects.iter().map(|p| p.to_string()).collect())
            },
        }
    }

    #[test]
    fn each_role_grants_what_its_table_says_and_nothing_else() {
        use Need::*;
        let table = [
            (Role::Viewer, vec![Open, Token, Read]),
            (Role::Deployer, vec![Open, Token, Read, Deploy]),
            (
                Role::Admin,
                vec![Open, Token, Read, Deploy, Admin, Alerts, Metrics],
            ),
            (Role::Alerts, vec![Open, Token, Alerts]),
            (Role::Metrics, vec![Open, Token, Metrics]),
        ];
        for (role, granted) in table {
            for need in [Open, Token, Read, Deploy, Admin, Alerts, Metrics] {
                assert_eq!(
                    role.grants(need),
                    granted.contains(&need),
                    "{role} × {need:?}"
                );
            }
        }
    }

    #[test]
    fn a_scoped_role_acts_in_its_projects_only_and_the_problem_names_the_grant() {
        let d = caller(Role::Deployer, &["a"]);
        assert!(d.allows(Need::Deploy, Some("a")).is_ok());
        let no = d.allows(Need::Deploy, Some("b")).unwrap_err();
        assert_eq!(no.project.as_deref(), Some("b"));
        assert_eq!(
            no.to_string(),
            "token \"t\" (deployer of a) may not do this: it needs the grant deployer on project \"b\""
        );
        let no = d.allows(Need::Admin, None).unwrap_err();
        assert_eq!(no.needs, Some(Role::Admin));
        assert!(no.project.is_none());
        // Routes without a project (clusters) only ask for the role.
        assert!(d.allows(Need::Read, None).is_ok());
        // Admin ignores projects; a viewer of every project sees all.
        assert!(
            caller(Role::Admin, &["a"])
                .allows(Need::Deploy, Some("b"))
                .is_ok()
        );
        assert!(caller(Role::Viewer, &[]).sees_all());
        assert!(!caller(Role::Viewer, &["a"]).sees_all());
        assert!(
            caller(Role::Alerts, &[])
                .allows(Need::Read, Some("a"))
                .is_err()
        );
    }

    #[test]
    fn tokens_round_trip_and_anything_else_is_not_one_of_ours() {
        let (token, parts) = new_token();
        assert_eq!(presented(&token), Some(parts.clone()));
        assert_eq!(parts.digest, digest(&token));
        let (other, _) = new_token();
        assert_ne!(token, other);
        for junk in [
            "",
            "smo_",
            "smo_abc_def",
            "api-token",
            &token[..token.len() - 1],
            &format!("{token}0"),
            &token.replace("smo_", "sma_"),
        ] {
            assert_eq!(presented(junk), None, "{junk}");
        }
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
    }

    #[test]
    fn a_session_cookie_holds_no_token_and_changes_with_the_digest() {
        let (token, parts) = new_token();
        let c = session_cookie(&parts.prefix, &parts.digest);
        assert!(!c.contains(&token[16..]));
        assert_eq!(session_parts(&c).unwrap().0, parts.prefix);
        let (_, other) = new_token();
        assert_ne!(
            session_parts(&c).unwrap().1,
            session_parts(&session_cookie(&parts.prefix, &other.digest))
                .unwrap()
                .1
        );
    }
}
