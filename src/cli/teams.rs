//! `smo-admin tokens …` and `smo-admin audit`: the API's tokens (created, listed, revoked here,
//! straight in the database) and the audit log. Every change smo-admin makes is audited as
//! `smo-admin:<user>`.

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    access::{self, Role},
    cli::{CliError, Output, ago, print_json, table},
    hdag::ProjectName,
    store,
};

#[derive(Subcommand)]
pub(super) enum TokensCmd {
    /// Create a token and print it once (it is stored as a digest only). Roles: viewer (reads),
    /// deployer (deploy, start, stop, re-place, remove), admin (everything), alerts (the
    /// Alertmanager webhook), metrics (the /metrics scrape).
    Create {
        /// A unique name: the audit log names the token by it.
        #[arg(long)]
        name: String,
        /// viewer | deployer | admin | alerts | metrics.
        #[arg(long)]
        role: String,
        /// A project the token acts in (repeat for several); viewer and deployer need at least
        /// one, or --all-projects.
        #[arg(long = "project")]
        projects: Vec<String>,
        /// Every project, present and future (viewer, deployer).
        #[arg(long)]
        all_projects: bool,
        /// The token stops working after this long (e.g. 30d, 12h).
        #[arg(long, value_parser = crate::cli::parse_duration)]
        expires: Option<std::time::Duration>,
    },
    /// Every token: name, role, projects, expiry, last use (never the token).
    List,
    /// Revoke a token by name: refused from the next request on.
    Revoke {
        /// The token's name.
        name: String,
    },
}

#[derive(Args)]
pub(super) struct AuditArgs {
    /// Only this project's changes.
    #[arg(long)]
    project: Option<String>,
    /// Only this token's changes (its name).
    #[arg(long)]
    token: Option<String>,
    /// Only changes since this long ago (e.g. 1h, 7d).
    #[arg(long, value_parser = crate::cli::parse_duration)]
    since: Option<std::time::Duration>,
    /// At most this many, newest first.
    #[arg(long, default_value_t = 50)]
    limit: i64,
}

/// Who smo-admin acts as in the audit log.
fn actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    format!("smo-admin:{user}")
}

/// Writes smo-admin's audit row for a change (`ok`: it was made).
pub(super) async fn audited(
    pool: &PgPool,
    operation: &str,
    job: Option<Uuid>,
    detail: Option<String>,
    ok: bool,
) -> Result<(), CliError> {
    let mut conn = pool.acquire().await.map_err(smo_jobs::Error::from)?;
    store::audit(
        &mut conn,
        &store::AuditRecord {
            at: Utc::now(),
            token: actor(),
            source: "admin".into(),
            operation: operation.into(),
            status: i32::from(!ok),
            job_id: job,
            detail,
            ..Default::default()
        },
    )
    .await
    .map_err(|e| CliError::Other(e.to_string()))
}

/// The checked form of `tokens create`'s flags: every problem, one line each (exit 2).
fn checked(
    role: &str,
    projects: &[String],
    all: bool,
) -> Result<(Role, Option<Vec<String>>), CliError> {
    let mut problems = Vec::new();
    let role = Role::parse(role).map_err(|e| problems.push(format!("--role: {e}")));
    for p in projects {
        if let Err(e) = ProjectName::parse(p) {
            problems.push(format!("--project {p:?}: {e}"));
        }
    }
    let projects = match (role, projects.is_empty(), all) {
        (Ok(r), _, _) if !r.is_scoped() => {
            if !projects.is_empty() || all {
                problems.push(format!(
                    "--project/--all-projects: a {r} token acts in every project; leave them out"
                ));
            }
            None
        }
        (_, false, true) => {
            problems.push("--project and --all-projects: give one or the other".into());
            None
        }
        (Ok(_), true, false) => {
            problems.push(
                "--project: name the projects the token acts in (repeat it), or --all-projects"
                    .into(),
            );
            None
        }
        (_, _, true) => None,
        (_, false, false) => Some(projects.to_vec()),
        (Err(()), true, false) => None,
    };
    match role {
        Ok(r) if problems.is_empty() => Ok((r, projects)),
        _ => Err(CliError::Usage(problems)),
    }
}

pub(super) async fn tokens(pool: &PgPool, cmd: TokensCmd, out: Output) -> Result<(), CliError> {
    let db = |e: store::StoreError| CliError::Other(e.to_string());
    match cmd {
        TokensCmd::Create {
            name,
            role,
            projects,
            all_projects,
            expires,
        } => {
            if name.trim().is_empty() || name.len() > 100 || name.contains('\0') {
                return Err(CliError::Usage(vec![
                    "--name: 1 to 100 characters, no NUL".into(),
                ]));
            }
            let (role, projects) = checked(&role, &projects, all_projects)?;
            let now = Utc::now();
            let expires_at = expires
                .map(|d| chrono::Duration::from_std(d).map(|d| now + d))
                .transpose()
                .map_err(|e| CliError::Usage(vec![format!("--expires: {e}")]))?;
            let (token, presented) = access::new_token();
            let mut tx = pool.begin().await.map_err(smo_jobs::Error::from)?;
            store::create_token(
                &mut tx,
                &store::NewToken {
                    name: &name,
                    presented: &presented,
                    role,
                    projects: projects.as_deref(),
                    expires_at,
                },
                now,
            )
            .await
            .map_err(|e| match e {
                store::StoreError::TokenNameTaken(_) => {
                    CliError::Usage(vec![format!("--name: {e}")])
                }
                e => db(e),
            })?;
            tx.commit().await.map_err(smo_jobs::Error::from)?;
            let scope = projects.as_ref().map_or("*".into(), |p| p.join(","));
            audited(
                pool,
                "tokens create",
                None,
                Some(format!("{name} ({role} of {scope})")),
                true,
            )
            .await?;
            if out == Output::Json {
                return print_json(&serde_json::json!({
                    "name": name, "role": role, "projects": projects, "expires_at": expires_at, "token": token,
                }));
            }
            println!("{token}");
            eprintln!(
                "token {name:?} ({role} of {scope}{}) created; it is shown this once.",
                expires_at.map_or(String::new(), |e| format!(", expires {}", e.to_rfc3339()))
            );
        }
        TokensCmd::List => {
            let rows = store::list_tokens(pool).await.map_err(db)?;
            if out == Output::Json {
                return print_json(&rows);
            }
            let now = Utc::now();
            let mut t = table(&[
                "name",
                "prefix",
                "role",
                "projects",
                "expires",
                "last used",
                "state",
            ]);
            for r in &rows {
                let state = match (r.revoked_at, r.expires_at) {
                    (Some(at), _) => format!("revoked {}", ago(at, now)),
                    (None, Some(e)) if e <= now => "expired".into(),
                    _ => "live".into(),
                };
                t.add_row(vec![
                    r.name.clone(),
                    r.prefix.clone(),
                    r.role.clone(),
                    r.projects.as_ref().map_or("*".into(), |p| p.join(",")),
                    r.expires_at.map_or("never".into(), |e| e.to_rfc3339()),
                    r.last_used_at.map_or("never".into(), |t| ago(t, now)),
                    state,
                ]);
            }
            println!("{t}");
            if rows.is_empty() {
                println!("(no tokens; the server's api_token is the bootstrap admin)");
            }
        }
        TokensCmd::Revoke { name } => {
            let mut conn = pool.acquire().await.map_err(smo_jobs::Error::from)?;
            let done = store::revoke_token(&mut conn, &name, Utc::now())
                .await
                .map_err(db)?;
            drop(conn);
            audited(pool, "tokens revoke", None, Some(name.clone()), done).await?;
            if !done {
                return Err(CliError::Usage(vec![format!(
                    "{name:?}: no live token of that name (smo-admin tokens list)"
                )]));
            }
            if out == Output::Json {
                return print_json(&serde_json::json!({ "revoked": name }));
            }
            println!("revoked {name:?}; it is refused from the next request on");
        }
    }
    Ok(())
}

pub(super) async fn audit(pool: &PgPool, a: AuditArgs, out: Output) -> Result<(), CliError> {
    let since: Option<DateTime<Utc>> = a
        .since
        .and_then(|d| chrono::Duration::from_std(d).ok())
        .map(|d| Utc::now() - d);
    let rows = store::audit_log(
        pool,
        &store::AuditFilter {
            project: a.project,
            token: a.token,
            since,
            limit: a.limit.clamp(1, 10_000),
            ..Default::default()
        },
    )
    .await
    .map_err(|e| CliError::Other(e.to_string()))?;
    if out == Output::Json {
        return print_json(&rows);
    }
    let now = Utc::now();
    let mut t = table(&[
        "when",
        "token",
        "source",
        "operation",
        "project",
        "graph",
        "status",
        "job",
    ]);
    for r in &rows {
        t.add_row(vec![
            ago(r.at, now),
            r.token.clone(),
            r.source.clone(),
            r.operation.clone(),
            r.project.clone().unwrap_or_default(),
            r.graph.clone().unwrap_or_default(),
            r.status.to_string(),
            r.job_id.map(|j| j.to_string()).unwrap_or_default(),
        ]);
    }
    println!("{t}");
    if rows.is_empty() {
        println!("(no changes recorded)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(r: Result<(Role, Option<Vec<String>>), CliError>) -> Vec<String> {
        match r {
            Err(CliError::Usage(p)) => p,
            other => panic!("expected a usage error, got {:?}", other.map(|_| ()).err()),
        }
    }

    #[test]
    fn token_flags_are_checked_together_and_every_problem_is_named() {
        let a = vec!["a".to_string()];
        assert_eq!(
            checked("deployer", &a, false).ok(),
            Some((Role::Deployer, Some(a.clone())))
        );
        assert_eq!(
            checked("viewer", &[], true).ok(),
            Some((Role::Viewer, None))
        );
        assert_eq!(checked("admin", &[], false).ok(), Some((Role::Admin, None)));
        assert_eq!(
            checked("alerts", &[], false).ok(),
            Some((Role::Alerts, None))
        );
        let p = problems(checked("deployer", &[], false));
        assert!(p[0].starts_with("--project:"), "{p:?}");
        let p = problems(checked("admin", &a, false));
        assert!(p[0].contains("every project"), "{p:?}");
        let p = problems(checked("root", &["Bad_Name".into()], false));
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].starts_with("--role:") && p[1].starts_with("--project \"Bad_Name\""));
        let p = problems(checked("viewer", &a, true));
        assert!(p[0].contains("one or the other"), "{p:?}");
    }
}
