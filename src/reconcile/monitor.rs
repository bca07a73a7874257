//! Monitoring jobs: publish dashboards and alert rules, and fan out drift repairs. (Scaling
//! rounds are in `scale`.)

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use serde_json::json;
use smo_jobs::{JobContext, JobError, NewJob};

use super::{App, db, retryable};
use crate::{
    federation::{Fence, manifests},
    hdag::Graph,
    monitoring::{
        self,
        io::{Grafana, Prometheus},
    },
    plan,
    store::{self, Desired},
};

/// Where alert rules go.
#[derive(Clone, Debug, Default)]
pub enum RulesTarget {
    /// Nowhere (no conditional services are expected, or rules are managed elsewhere).
    #[default]
    None,
    /// A `monitoring.coreos.com/v1` PrometheusRule object per graph, applied through Karmada.
    PrometheusRule {
        /// Namespace of the object (default: the graph's project).
        namespace: Option<String>,
        /// Rule group name (default: `smo-<project>-<graph>`).
        group: Option<String>,
    },
    /// A rule file per graph in `dir` (which Prometheus's `rule_files` covers), then `POST /-/reload`.
    RuleFile {
        /// The directory.
        dir: PathBuf,
    },
}

/// The monitoring stack as the jobs see it; every part optional.
#[derive(Clone, Default)]
pub struct Monitoring {
    /// Prometheus (request rates; rule reloads).
    pub prometheus: Option<Prometheus>,
    /// Grafana (dashboards).
    pub grafana: Option<Grafana>,
    /// Where alert rules go.
    pub rules: RulesTarget,
    /// The `rate()` window of the request-rate query, e.g. `1m`.
    pub rate_window: String,
}

impl Monitoring {
    /// Whether a publish job of the graph would publish anything: dashboards when there is a
    /// Grafana, alert rules when there is a rules target and the graph has event triggers.
    /// Otherwise it would only lock and read the graph, so a deploy does not enqueue it.
    pub fn publishes(&self, project: &str, graph: &Graph) -> bool {
        self.grafana.is_some()
            || (!matches!(self.rules, RulesTarget::None)
                && !monitoring::alert_rules(project, graph).is_empty())
    }
}

/// A 6-field cron expression firing every `interval` (seconds dividing a minute, or minutes
/// dividing an hour); other intervals round to the nearest that does.
pub fn cron_schedule_for(interval: Duration) -> String {
    let secs = interval.as_secs().max(1);
    if secs < 60 {
        let step = [1u64, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30]
            .into_iter()
            .min_by_key(|d| d.abs_diff(secs))
            .unwrap_or(30);
        format!("*/{step} * * * * *")
    } else {
        let mins = (secs / 60).max(1);
        let step = [1u64, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30]
            .into_iter()
            .min_by_key(|d| d.abs_diff(mins))
            .unwrap_or(30);
        format!("0 */{step} * * * *")
    }
}

fn rule_file_path(dir: &std::path::Path, project: &str, graph: &str) -> PathBuf {
    dir.join(format!(
        "{}.yml",
        monitoring::rule_group_name(project, graph)
    ))
}

/// How long `publish-dashboards` waits for its graph's lock before it snoozes: the job that
/// enqueued it (a deploy, a drift repair) lets go of it right after committing.
const PUBLISH_LOCK_PATIENCE: Duration = Duration::from_millis(1000);

/// Publishes the graph's dashboards (Grafana) and alert rules; stores the dashboard URLs. Under
/// the graph's lock, as every job that writes a graph's objects: the PrometheusRule carries the
/// lock's fencing token (a stale publisher's late write is refused), and publishing never
/// interleaves with a stop or a removal taking the rules down.
pub async fn publish(app: &App, name: &str, ctx: &JobContext) -> Result<(), JobError> {
    super::graph::with_locked_graph_after(app, name, ctx, PUBLISH_LOCK_PATIENCE, |fence| {
        publish_locked(app, name, ctx, fence)
    })
    .await
}

async fn publish_locked(
    app: &App,
    name: &str,
    ctx: &JobContext,
    fence: Fence,
) -> Result<(), JobError> {
    let Some(g) = super::load_graph(app, name).await? else {
        return Ok(());
    };
    if g.desired != Desired::Running {
        return Ok(());
    }
    let graph: Graph = super::descriptor_of(&g)?;
    let mut urls = BTreeMap::new();
    if let Some(grafana) = &app.monitoring.grafana {
        let set = monitoring::render_graph_dashboards(g.project.as_str(), &graph);
        for d in set.iter() {
            fence.check()?;
            let url = grafana
                .upsert(&monitoring::grafana_payload(d, None))
                .await
                .map_err(retryable)?;
            urls.insert(d.title.clone(), url);
        }
    }
    let rules = publish_rules(app, g.project.as_str(), &graph, &fence).await?;
    if urls.is_empty() && rules == 0 {
        return Ok(()); // nothing configured, nothing to say
    }
    let outcome = plan::published(urls, rules);
    let mut tx = super::begin_record(app, ctx).await?;
    store::record_outcome(&mut tx, &g, ctx.id, &outcome, ctx.queue.now())
        .await
        .map_err(db)?;
    tx.commit().await.map_err(db)
}

/// The graph's PrometheusRule object and its namespace (the configured one, else the project's).
fn rule_object(
    project: &str,
    graph: &Graph,
    namespace: &Option<String>,
    group: &Option<String>,
) -> (String, serde_json::Value) {
    let ns = namespace.clone().unwrap_or_else(|| project.to_string());
    let group = group
        .clone()
        .unwrap_or_else(|| monitoring::rule_group_name(project, &graph.id));
    let name = manifests::object_name(&graph.id, "alerts");
    let obj = monitoring::prometheus_rule(project, graph, &name, &ns, &group);
    (ns, obj)
}

async fn publish_rules(
    app: &App,
    project: &str,
    graph: &Graph,
    fence: &Fence,
) -> Result<usize, JobError> {
    let rules = monitoring::alert_rules(project, graph);
    if rules.is_empty() {
        return Ok(0);
    }
    match &app.monitoring.rules {
        RulesTarget::None => Ok(0),
        RulesTarget::PrometheusRule { namespace, group } => {
            let (ns, obj) = rule_object(project, graph, namespace, group);
            let federation = app.federation()?;
            federation
                .ensure_namespace(&ns, fence)
                .await
                .map_err(retryable)?;
            federation.apply(&obj, fence).await.map_err(retryable)?;
            Ok(rules.len())
        }
        RulesTarget::RuleFile { dir } => {
            let text = monitoring::rule_file(&[(
                monitoring::rule_group_name(project, &graph.id),
                rules.clone(),
            )]);
            let path = rule_file_path(dir, project, &graph.id);
            let tmp = path.with_extension("yml.tmp");
            fence.check()?;
            std::fs::create_dir_all(dir)
                .map_err(|e| JobError::Transient(format!("{}: {e}", dir.display())))?;
            std::fs::write(&tmp, text)
                .map_err(|e| JobError::Transient(format!("{}: {e}", tmp.display())))?;
            std::fs::rename(&tmp, &path)
                .map_err(|e| JobError::Transient(format!("{}: {e}", path.display())))?;
            if let Some(p) = &app.monitoring.prometheus {
                fence.check()?;
                p.reload().await.map_err(retryable)?;
            }
            Ok(rules.len())
        }
    }
}

/// What of a graph's published monitoring is gone: dashboards missing from Grafana, the alert
/// rules missing from the federation or the rule directory. Empty when nothing is configured.
pub async fn missing_publications(
    app: &App,
    project: &str,
    graph: &Graph,
) -> Result<Vec<String>, JobError> {
    let mut missing = Vec::new();
    if let Some(grafana) = &app.monitoring.grafana {
        for d in monitoring::render_graph_dashboards(project, graph).iter() {
            if !grafana.exists(&d.uid).await.map_err(retryable)? {
                missing.push(format!("dashboard {}", d.uid));
            }
        }
    }
    if monitoring::alert_rules(project, graph).is_empty() {
        return Ok(missing);
    }
    match &app.monitoring.rules {
        RulesTarget::None => {}
        RulesTarget::PrometheusRule { namespace, group } => {
            let (ns, obj) = rule_object(project, graph, namespace, group);
            let live = app.federation()?.get(&obj).await.map_err(retryable)?;
            if live.is_none_or(|l| manifests::drifted(&obj, &l)) {
                let name = obj["metadata"]["name"].as_str().unwrap_or_default();
                missing.push(format!("PrometheusRule {ns}/{name}"));
            }
        }
        RulesTarget::RuleFile { dir } => {
            let path = rule_file_path(dir, project, &graph.id);
            if !path.exists() {
                missing.push(format!("rule file {}", path.display()));
            }
        }
    }
    Ok(missing)
}

/// Removes a graph's alert rules (stop and remove) and, with `dashboards`, its dashboards (remove).
pub async fn unpublish(
    app: &App,
    project: &str,
    graph: &Graph,
    dashboards: bool,
    fence: &Fence,
) -> Result<(), JobError> {
    if dashboards && let Some(grafana) = &app.monitoring.grafana {
        for d in monitoring::render_graph_dashboards(project, graph).iter() {
            fence.check()?;
            grafana.delete(&d.uid).await.map_err(retryable)?;
        }
    }
    match &app.monitoring.rules {
        RulesTarget::None => {}
        // PrometheusRule objects carry the graph label: the federation's delete-by-label removes them.
        RulesTarget::PrometheusRule {
            namespace: Some(ns),
            ..
        } if ns != project => {
            let name = manifests::object_name(&graph.id, "alerts");
            let obj = json!({"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
                             "metadata": {"name": name, "namespace": ns}});
            app.federation()?
                .delete(&obj, fence)
                .await
                .map_err(retryable)?;
        }
        RulesTarget::PrometheusRule { .. } => {}
        RulesTarget::RuleFile { dir } => {
            let path = rule_file_path(dir, project, &graph.id);
            fence.check()?;
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    if let Some(p) = &app.monitoring.prometheus {
                        fence.check()?;
                        p.reload().await.map_err(retryable)?;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(JobError::Transient(format!("{}: {e}", path.display()))),
            }
        }
    }
    Ok(())
}

/// Enqueues one drift repair per running graph; a graph whose previous repair is still queued or
/// running keeps that one (unique key).
pub async fn drift_fanout(app: &App, ctx: &JobContext) -> Result<(), JobError> {
    per_running_graph(app, ctx, |graph| super::RepairDriftJob { graph }).await
}

/// Enqueues `job(graph)` for every running graph, in bulk (5,000 per statement).
async fn per_running_graph<A: smo_jobs::JobArgs>(
    app: &App,
    ctx: &JobContext,
    job: impl Fn(crate::hdag::GraphName) -> A,
) -> Result<(), JobError> {
    let names = {
        let mut conn = app.pool.acquire().await.map_err(db)?;
        store::running_graph_names(&mut conn).await.map_err(db)?
    };
    let jobs: Vec<NewJob> = names
        .into_iter()
        .map(|g| NewJob::from_args(&job(g)))
        .collect::<Result<_, _>>()
        .map_err(|e| JobError::Permanent(e.to_string()))?;
    for chunk in jobs.chunks(5_000) {
        ctx.queue
            .enqueue_many(chunk)
            .await
            .map_err(|e| JobError::Transient(e.to_string()))?;
    }
    Ok(())
}
