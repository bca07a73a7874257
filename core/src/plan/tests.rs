//! The decisions of every graph job, on plain data: no database, no cluster, no clock.

use super::*;

const APP: &str = r#"
hdaGraph:
  imVersion: 0.4.0
  id: app
  version: "1.0.0"
  services:
    - id: web
      deployment:
        trigger: {auto: {dependencies: [api]}}
        intent:
          compute: {cpu: 250m, ram: 256Mi, storage: light, gpu: {enabled: false}}
          connectionPoints: [api, chart]
      artifact:
        image: ghcr.io/example/web:1.0
        ports: [{port: 8080, name: http}]
    - id: api
      deployment:
        trigger: {auto: {dependencies: []}}
        intent:
          compute: {cpu: 250m, ram: 256Mi, storage: light, gpu: {enabled: false}}
      artifact:
        image: ghcr.io/example/api:1.0
        ports: [{port: 9000}]
    - id: chart
      deployment:
        trigger: {auto: {dependencies: []}}
        intent:
          compute: {cpu: 250m, ram: 256Mi, storage: light, gpu: {enabled: false}}
      artifact:
        ociImage: oci://127.0.0.1:5000/charts/worker
        ociConfig: {type: App, implementer: HELM}
    - id: failover
      deployment:
        trigger:
          event:
            condition: ALL
            events:
              - id: web-slow
                condition: {promQuery: latency > 0.5}
              - id: web-erroring
                condition: {promQuery: errors > 1}
        intent:
          compute: {cpu: 250m, ram: 256Mi, storage: light, gpu: {enabled: false}}
      artifact:
        image: ghcr.io/example/failover:1.0
        ports: [{port: 9100}]
"#;

fn graph() -> Graph {
    crate::hdag::parse(APP.as_bytes()).expect("valid").graph
}

fn cluster(name: &str, cpu_free: f64) -> ClusterRecord {
    ClusterRecord {
        name: crate::hdag::ClusterName::parse(name).unwrap(),
        ready: true,
        cpu_allocatable: cpu_free,
        cpu_free,
        memory_allocatable: 8 << 30,
        memory_free: 8 << 30,
        gpus: 0,
        labels: json!({}),
        message: None,
        synced_at: chrono::DateTime::UNIX_EPOCH,
    }
}

/// The services as stored on upload, with `status` for each.
fn services(g: &Graph, status: ServiceStatus) -> Vec<ServiceRecord> {
    NewService::of_graph(g)
        .into_iter()
        .enumerate()
        .map(|(i, s)| ServiceRecord {
            name: s.name,
            position: i as i32,
            status: if s.conditional {
                ServiceStatus::Pending
            } else {
                status
            },
            cluster: None,
            replicas: s.replicas,
            ready: 0,
            conditional: s.conditional,
            cpu_millis: s.cpu_millis,
            memory_bytes: s.memory_bytes,
            gpu: s.gpu,
        })
        .collect()
}

fn snap<'a>(
    g: &'a Graph,
    services: &'a [ServiceRecord],
    clusters: &'a [ClusterRecord],
    current: &'a BTreeMap<String, String>,
) -> Snapshot<'a> {
    Snapshot {
        graph: g,
        project: "p",
        services,
        clusters,
        current,
    }
}

fn placed(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(s, c)| (s.to_string(), c.to_string()))
        .collect()
}

fn applied(plan: &Deploy) -> Vec<String> {
    plan.work
        .iter()
        .map(|w| match w {
            Work::Apply { service, .. } => service.clone(),
            Work::Helm(r) => format!("helm:{}", r.release),
        })
        .collect()
}

#[test]
fn a_first_deploy_places_and_applies_every_unconditional_service_in_deploy_order() {
    let g = graph();
    let services = services(&g, ServiceStatus::Pending);
    let clusters = [cluster("edge-a", 4.0)];
    let current = BTreeMap::new();
    let s = snap(&g, &services, &clusters, &current);
    let plan = deploy(&s, false, true).unwrap();
    assert!(plan.placement.solution.is_some(), "nothing was placed yet");
    assert_eq!(
        plan.placement.placement,
        placed(&[("api", "edge-a"), ("chart", "edge-a"), ("web", "edge-a")]),
        "the conditional service waits for its event"
    );
    // api before web (web depends on it); the chart through Helm, with its placement injected.
    let order = applied(&plan);
    let pos = |s: &str| order.iter().position(|o| o == s).unwrap();
    assert!(pos("api") < pos("web"), "{order:?}");
    assert!(order.contains(&"helm:app-chart".to_string()), "{order:?}");
    let Some(Work::Helm(release)) = plan.work.iter().find(|w| matches!(w, Work::Helm(_))) else {
        unreachable!()
    };
    assert_eq!(release.values["clustersAffinity"], json!(["edge-a"]));
    assert_eq!(release.values["serviceImportClusters"], json!(["edge-a"]));

    let observed: BTreeMap<_, _> = [
        ("api".to_string(), Some((1, 1))),
        ("web".to_string(), Some((1, 0))),
    ]
    .into();
    let out = plan.outcome(&observed);
    assert_eq!(out.status, Some((GraphStatus::Running, None)));
    let status_of = |s: &str| out.services.iter().find(|x| x.0 == s).map(|x| x.1);
    assert_eq!(status_of("api"), Some(ServiceStatus::Running));
    assert_eq!(status_of("web"), Some(ServiceStatus::Deployed));
    assert_eq!(status_of("chart"), Some(ServiceStatus::Deployed));
    assert_eq!(status_of("failover"), None);
    let kinds: Vec<&str> = out.decisions.iter().map(|d| d.kind.as_str()).collect();
    assert_eq!(kinds, ["placement", "deploy"]);
    assert_eq!(plan.solved(), Some(Solve::Placement));
    assert!(
        out.decisions[0]
            .message
            .starts_with("placed 3 services (3 new, 0 moved)"),
        "{}",
        out.decisions[0].message
    );
    assert_eq!(out.decisions[1].outcome["applied"], plan.objects());
    assert!(out.publish, "a deploy publishes dashboards");
}

#[test]
fn without_a_helm_runner_chart_services_wait_and_the_graph_says_so() {
    let g = graph();
    let services = services(&g, ServiceStatus::Pending);
    let clusters = [cluster("edge-a", 4.0)];
    let current = BTreeMap::new();
    let s = snap(&g, &services, &clusters, &current);
    let plan = deploy(&s, false, false).unwrap();
    assert_eq!(plan.waits_for_helm, ["chart"]);
    assert!(!applied(&plan).iter().any(|w| w.starts_with("helm:")));
    let out = plan.outcome(&BTreeMap::new());
    let (status, message) = out.status.unwrap();
    assert_eq!(status, GraphStatus::Running);
    assert!(message.unwrap().contains("chart wait for the Helm runner"));
}

#[test]
fn services_keep_a_usable_cluster_without_a_solve_and_a_re_placement_applies_only_what_moved() {
    let g = graph();
    let services = services(&g, ServiceStatus::Running);
    let current = placed(&[("api", "edge-a"), ("chart", "edge-a"), ("web", "edge-a")]);
    let clusters = [cluster("edge-a", 4.0), cluster("edge-b", 4.0)];
    let s = snap(&g, &services, &clusters, &current);
    let kept = deploy(&s, false, true).unwrap();
    assert!(kept.placement.solution.is_none());
    assert_eq!(kept.solved(), None, "nothing solved, nothing to time");
    assert_eq!(kept.placement.placement, current);

    // edge-a is lost: a re-placement moves everything to edge-b and applies all of it.
    let clusters = [cluster("edge-b", 4.0)];
    let s = Snapshot {
        clusters: &clusters,
        ..s
    };
    let moved = deploy(&s, true, true).unwrap();
    // Nothing current is left on a live cluster: a fresh placement, not a re-placement.
    assert_eq!(moved.solved(), Some(Solve::Placement));
    assert!(moved.placement.placement.values().all(|c| c == "edge-b"));
    assert_eq!(applied(&moved).len(), 3);
    let out = moved.outcome(&BTreeMap::new());
    assert!(out.decisions[0].message.contains("(0 new, 3 moved)"));
    assert_eq!(out.decisions[1].kind, DecisionKind::RePlace);
    assert!(!out.publish, "a re-placement does not re-publish");

    // Both clusters usable and nothing forced to move: a re-placement applies nothing that stayed.
    let clusters = [cluster("edge-a", 4.0), cluster("edge-b", 4.0)];
    let s = Snapshot {
        clusters: &clusters,
        ..s
    };
    let stayed = deploy(&s, true, true).unwrap();
    assert_eq!(stayed.solved(), Some(Solve::RePlacement));
    let moved_now: Vec<&String> = stayed
        .placement
        .placement
        .iter()
        .filter(|(svc, c)| current.get(*svc) != Some(*c))
        .map(|(svc, _)| svc)
        .collect();
    assert_eq!(applied(&stayed).len(), moved_now.len(), "{moved_now:?}");
}

#[test]
fn a_conditional_deploy_waits_for_all_its_events_then_deploys_once() {
    let g = graph();
    let services = services(&g, ServiceStatus::Running);
    let one: BTreeSet<String> = ["web-slow".to_string()].into();
    let Gate::Waits(out) = conditional_gate(&g, &services, "failover", "web-slow", &one).unwrap()
    else {
        panic!("ALL with one event firing waits");
    };
    assert_eq!(out.decisions[0].outcome["missing"], json!(["web-erroring"]));
    assert_eq!(out.status, None, "the graph's status is untouched");

    let both: BTreeSet<String> = ["web-slow".to_string(), "web-erroring".to_string()].into();
    assert_eq!(
        conditional_gate(&g, &services, "failover", "web-slow", &both).unwrap(),
        Gate::Go
    );
    assert!(matches!(
        conditional_gate(&g, &services, "nope", "web-slow", &both),
        Err(PlanError::NoService { .. })
    ));

    let current = placed(&[("api", "edge-a"), ("chart", "edge-a"), ("web", "edge-a")]);
    let clusters = [cluster("edge-a", 4.0)];
    let s = snap(&g, &services, &clusters, &current);
    let trigger = Trigger {
        service: "failover".into(),
        alert: "web-slow".into(),
    };
    let plan = conditional(&s, trigger, true).unwrap();
    assert_eq!(applied(&plan), ["failover"], "only the triggered service");
    let out = plan.outcome(&BTreeMap::new());
    assert_eq!(
        out.services,
        [("failover".to_string(), ServiceStatus::Deployed, None)],
        "applied counts as deployed before its pods report"
    );
    assert_eq!(out.clear_events.as_deref(), Some("failover"));
    assert_eq!(out.placement.unwrap()["failover"], "edge-a");
    assert!(out.decisions[0].message.starts_with("alert web-slow fired"));

    // Deployed now: a repeated alert finds nothing to do.
    let mut after = services.clone();
    after
        .iter_mut()
        .for_each(|s| s.status = ServiceStatus::Deployed);
    assert_eq!(
        conditional_gate(&g, &after, "failover", "web-slow", &both).unwrap(),
        Gate::Done
    );
}

#[test]
fn a_stop_leaves_a_never_fired_conditional_service_pending_and_uninstalls_installed_charts() {
    let g = graph();
    let services = services(&g, ServiceStatus::Running);
    let stop = stop(Some(&g), &services);
    assert_eq!(stop.uninstall, ["app-chart"]);
    let names: Vec<&str> = stop.stopped.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(names, ["web", "api", "chart"]);
    let out = stop.outcome(7);
    assert_eq!(out.status, Some((GraphStatus::Stopped, None)));
    assert!(
        out.services
            .iter()
            .all(|(_, st, seen)| *st == ServiceStatus::Stopped && seen.is_some_and(|r| r.1 == 0))
    );
    assert_eq!(out.decisions[0].message, "deleted 7 objects");
    assert_eq!(helm_releases(&g), ["app-chart"]);
}

#[test]
fn drift_expects_the_objects_of_deployed_native_services_only() {
    let g = graph();
    let mut services = services(&g, ServiceStatus::Running);
    services
        .iter_mut()
        .find(|s| s.name == "api")
        .unwrap()
        .status = ServiceStatus::Stopped;
    let current = placed(&[("api", "edge-a"), ("chart", "edge-a"), ("web", "edge-a")]);
    let s = Snapshot {
        graph: &g,
        project: "p",
        services: &services,
        clusters: &[],
        current: &current,
    };
    let expected = expected_objects(&s);
    assert!(!expected.is_empty());
    assert!(
        expected.iter().all(|(what, obj)| what.ends_with("app-web")
            || obj["metadata"]["labels"].to_string().contains("\"web\"")),
        "{:?}",
        expected.iter().map(|e| &e.0).collect::<Vec<_>>()
    );
    assert_eq!(
        drift(&current, &[], &[], &[]),
        None,
        "no drift, no decision"
    );
    let out = drift(
        &current,
        &["Deployment app-web".into()],
        &[],
        &["dashboards".into()],
    )
    .unwrap();
    assert!(out.publish);
    assert_eq!(
        out.decisions[0].message,
        "drift repaired: re-created 1 missing objects; re-publishing dashboards"
    );
}

#[test]
fn a_dry_run_places_what_a_deploy_would_without_stored_records() {
    let g = graph();
    let clusters = [cluster("edge-a", 4.0)];
    let (plan, objects) = dry_run(&g, &clusters, "p").unwrap();
    assert_eq!(
        plan.placement.keys().collect::<Vec<_>>(),
        ["api", "chart", "web"]
    );
    assert!(!objects.is_empty());
    // What a deploy of the stored graph would place, on the same clusters.
    let services = services(&g, ServiceStatus::Pending);
    let current = BTreeMap::new();
    let s = snap(&g, &services, &clusters, &current);
    assert_eq!(
        deploy(&s, false, true).unwrap().placement.placement,
        plan.placement
    );
    // Too little CPU anywhere: the dry run says so instead of placing.
    assert!(dry_run(&g, &[cluster("edge-a", 0.1)], "p").is_err());
}

#[test]
fn a_failure_is_recorded_on_the_graph_and_in_the_log_with_what_was_cleaned_up() {
    let cleanup = Cleanup {
        objects: 4,
        releases: 1,
        left: vec![],
    };
    let out = failed("placement: no cluster has a GPU", cleanup);
    assert_eq!(
        out.status,
        Some((
            GraphStatus::Failed,
            Some("placement: no cluster has a GPU".into())
        ))
    );
    assert_eq!(out.decisions[0].kind, DecisionKind::Deploy);
    assert_eq!(
        out.decisions[0].message,
        "failed: placement: no cluster has a GPU; removed 4 objects and 1 Helm releases it had applied"
    );
    assert_eq!(out.decisions[0].outcome["removed_objects"], 4);
    let left = Cleanup {
        left: vec!["objects: timed out".into()],
        ..Cleanup::default()
    };
    assert!(
        failed("x", left).decisions[0]
            .message
            .ends_with("; left: objects: timed out")
    );
    // A re-placement that cannot be made leaves the graph as it is.
    let out = replace_failed("no cluster has room");
    assert_eq!(out.status, None);
    assert_eq!(out.placement, None);
    assert_eq!(out.decisions[0].kind, DecisionKind::RePlace);
}
