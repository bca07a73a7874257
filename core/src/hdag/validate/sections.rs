//! The descriptor's sections, one reader each: graph, intent, service, deployment, trigger,
//! events, intent, co-location (the resource sections are in `resources`).

use super::*;

pub(super) fn graph(mut o: Obj<'_>, cx: &mut Cx) -> Option<Graph> {
    let im_version = match o.get("imVersion") {
        None => {
            cx.warn(
                "imVersion",
                format!("missing; assuming {}", KNOWN_IM_VERSIONS[0]),
            );
            None
        }
        Some(v) => text(v, "imVersion", cx).inspect(|iv| {
            if !KNOWN_IM_VERSIONS.contains(&iv.as_str()) {
                cx.warn(
                    "imVersion",
                    format!(
                        "unknown information-model version {} (smo knows {})",
                        q(iv),
                        KNOWN_IM_VERSIONS.join(", ")
                    ),
                );
            }
        }),
    };
    let id = o.require("id", cx).and_then(|v| dns_id(v, "id", cx));
    let version = match o.get("version") {
        // The reference never reads it; descriptors written for it may lack it.
        None => {
            cx.warn(
                "version",
                "missing; assumed \"0.0.0\" (the reference SMO never reads it; smo lists it)",
            );
            Some("0.0.0".to_string())
        }
        Some(v) => (|| {
            if v.is_number() {
                cx.warn(
                    "version",
                    "a number; quote it (\"1.10\" and 1.1 are the same number)",
                );
            }
            let s = text(v, "version", cx)?;
            if !is_semverish(&s) {
                cx.error(
                    "version",
                    format!("expected a SemVer version such as \"1.0.0\", got {}", q(&s)),
                );
            }
            Some(s)
        })(),
    };
    let designer = opt_text(&mut o, "designer", cx);
    let description = opt_text(&mut o, "description", cx);
    let hda_graph_intent = match o.get("hdaGraphIntent") {
        Some(v) => obj(v, "hdaGraphIntent", cx)
            .map(|io| graph_intent(io, cx))
            .unwrap_or_default(),
        None => GraphIntent::default(),
    };
    let mut services = Vec::new();
    let mut all_ok = true;
    if let Some(items) = o
        .require("services", cx)
        .and_then(|v| list(v, "services", cx))
    {
        if items.is_empty() {
            cx.error("services", "a graph needs at least one service");
        }
        if items.len() > cx.max_services {
            let message = format!(
                "a graph may have at most {} services; this one has {}",
                cx.max_services,
                items.len()
            );
            cx.error("services", message);
            return None;
        }
        // What the cross-checks need of each item, even of services with other errors.
        let mut seen: Vec<Option<Seen>> = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let (info, s) = service(item, i, cx);
            seen.push(info);
            match s {
                Some(s) => services.push(s),
                None => all_ok = false,
            }
        }
        cross_check(&seen, cx);
    }
    let extra = o.finish(cx);
    Some(Graph {
        im_version,
        id: id?,
        version: version?,
        designer,
        description,
        hda_graph_intent,
        services,
        extra,
    })
    .filter(|_| all_ok)
}

pub(super) fn graph_intent(mut o: Obj<'_>, cx: &mut Cx) -> GraphIntent {
    let use_static_placement = opt_bool(&mut o, "useStaticPlacement", cx);
    let security = opt_toggle(&mut o, "security", cx);
    let high_performance = opt_toggle(&mut o, "highPerformance", cx);
    let energy_efficiency = opt_toggle(&mut o, "energyEfficiency", cx);
    let failback_path = o.at("failback");
    let failback = o
        .get("failback")
        .and_then(|v| {
            one_of(
                v,
                &failback_path,
                &[("auto", Failback::Auto), ("manual", Failback::Manual)],
                cx,
            )
        })
        .unwrap_or_default();
    let ha_path = o.at("highAvailability");
    let high_availability = match o.get("highAvailability").and_then(|v| obj(v, &ha_path, cx)) {
        Some(mut ha) => {
            let enabled = opt_bool(&mut ha, "enabled", cx);
            let min_path = ha.at("minReplicasOverall");
            let min = ha
                .get("minReplicasOverall")
                .and_then(|v| uint(v, &min_path, cx));
            let max_path = ha.at("maxReplicasOverall");
            let max = ha
                .get("maxReplicasOverall")
                .and_then(|v| uint(v, &max_path, cx));
            if max == Some(0) {
                cx.error(&max_path, "must be at least 1");
            }
            if let (Some(lo), Some(hi)) = (min, max)
                && lo > hi
            {
                cx.error(
                    &min_path,
                    format!("minReplicasOverall ({lo}) is greater than maxReplicasOverall ({hi})"),
                );
            }
            if enabled && max == Some(1) {
                cx.error(&max_path, "highAvailability needs at least 2 replicas");
            }
            HighAvailability {
                enabled,
                min_replicas_overall: min,
                max_replicas_overall: max,
                extra: ha.finish(cx),
            }
        }
        None => HighAvailability::default(),
    };
    GraphIntent {
        use_static_placement,
        security,
        high_availability,
        high_performance,
        energy_efficiency,
        failback,
        extra: o.finish(cx),
    }
}

pub(super) fn service(v: &Value, i: usize, cx: &mut Cx) -> (Option<Seen>, Option<Service>) {
    let path = index("services", i);
    let Some(mut o) = obj(v, &path, cx) else {
        return (None, None);
    };
    let id = o
        .require("id", cx)
        .and_then(|v| dns_id(v, &join(&path, "id"), cx));
    let dpath = o.at("deployment");
    let deployment = o
        .require("deployment", cx)
        .and_then(|v| obj(v, &dpath, cx))
        .and_then(|d| deployment(d, i, cx));
    let apath = o.at("artifact");
    let artifact = o
        .require("artifact", cx)
        .and_then(|v| obj(v, &apath, cx))
        .map(|a| artifact(a, cx));
    let extra = o.finish(cx);
    let seen = id.clone().map(|id| Seen {
        id,
        conditional: deployment
            .as_ref()
            .is_some_and(|d| d.trigger.event.is_some()),
    });
    let service = (|| {
        Some(Service {
            id: id?,
            deployment: deployment?,
            artifact: artifact?,
            extra,
        })
    })();
    (seen, service)
}

pub(super) fn deployment(mut o: Obj<'_>, i: usize, cx: &mut Cx) -> Option<Deployment> {
    let tpath = o.at("trigger");
    let trigger = o
        .require("trigger", cx)
        .and_then(|v| obj(v, &tpath, cx))
        .and_then(|t| trigger(t, i, cx));
    let ipath = o.at("intent");
    let intent = match o.get("intent") {
        Some(v) => obj(v, &ipath, cx)
            .map(|io| intent(io, i, cx))
            .unwrap_or_default(),
        None => {
            cx.warn(&ipath, "missing; assuming small compute and no connections");
            Intent::default()
        }
    };
    let extra = o.finish(cx);
    Some(Deployment {
        trigger: trigger?,
        intent,
        extra,
    })
}

pub(super) fn trigger(mut o: Obj<'_>, i: usize, cx: &mut Cx) -> Option<Trigger> {
    // `auto:` with nothing after it still means "deploy now".
    let auto_v = o.get_raw("auto");
    let event_v = o.get_raw("event");
    let mut auto = auto_v.map(|v| {
        let p = o.at("auto");
        match v {
            Value::Null => AutoTrigger::default(),
            v => match obj(v, &p, cx) {
                Some(mut a) => {
                    let dp = a.at("dependencies");
                    let deps = a.get("dependencies");
                    let dependencies = id_list(deps, &dp, i, RefKind::Dependency, cx);
                    AutoTrigger {
                        dependencies,
                        extra: a.finish(cx),
                    }
                }
                None => AutoTrigger::default(),
            },
        }
    });
    let epath = o.at("event");
    let event = match event_v {
        Some(v) => Some(event_trigger(v, &epath, i, cx)?),
        None => None,
    };
    match (&auto, &event) {
        (Some(_), Some(_)) => cx.error(&o.path, "set exactly one of auto and event, not both"),
        // The reference deploys a service without an event at once (`trigger: {}`,
        // `trigger: {type: standard}`): so does smo, saying so.
        (None, None) => {
            cx.warn(
                &o.path,
                "neither auto nor event: deployed at once, as the reference SMO does (write `auto: {}` to say so)",
            );
            auto = Some(AutoTrigger::default());
        }
        _ => {}
    }
    let extra = o.finish(cx);
    Some(Trigger { auto, event, extra })
}

pub(super) fn event_trigger(v: &Value, path: &str, i: usize, cx: &mut Cx) -> Option<EventTrigger> {
    let mut o = obj(v, path, cx)?;
    let condition = opt_text(&mut o, "condition", cx);
    if let Some(c) = &condition
        && !["ANY", "ALL"].iter().any(|k| k.eq_ignore_ascii_case(c))
    {
        cx.warn(
            &o.at("condition"),
            format!("expected ANY or ALL, got {}", q(c)),
        );
    }
    let events_path = o.at("events");
    let mut events = Vec::new();
    if let Some(items) = o
        .require("events", cx)
        .and_then(|v| list(v, &events_path, cx))
    {
        if items.is_empty() {
            cx.error(
                &events_path,
                "a conditional service needs at least one event",
            );
        }
        let mut first_at: HashMap<String, usize> = HashMap::new();
        for (k, item) in items.iter().enumerate() {
            let p = index(&events_path, k);
            if let Some(e) = event(item, &p, i, cx) {
                if let Some(&first) = first_at.get(&e.id) {
                    cx.error(
                        &join(&p, "id"),
                        format!(
                            "duplicate event id {} (first at {})",
                            q(&e.id),
                            index(&events_path, first)
                        ),
                    );
                } else {
                    first_at.insert(e.id.clone(), k);
                }
                events.push(e);
            }
        }
    }
    let extra = o.finish(cx);
    Some(EventTrigger {
        condition,
        events,
        extra,
    })
}

pub(super) fn event(v: &Value, path: &str, i: usize, cx: &mut Cx) -> Option<Event> {
    let mut o = obj(v, path, cx)?;
    let id_path = o.at("id");
    let id = o.require("id", cx).and_then(|v| text(v, &id_path, cx));
    if id.as_deref().is_some_and(|s| s.trim().is_empty()) {
        cx.error(&id_path, "must not be empty");
    }
    let spath = o.at("source");
    let mut source = Vec::new();
    if let Some(items) = o.get("source").and_then(|v| list(v, &spath, cx)) {
        for (k, item) in items.iter().enumerate() {
            let p = index(&spath, k);
            let Some(mut so) = obj(item, &p, cx) else {
                continue;
            };
            let sid_path = so.at("serviceId");
            let service_id = so
                .require("serviceId", cx)
                .and_then(|v| text(v, &sid_path, cx));
            let metric_id = opt_text(&mut so, "metricId", cx);
            let extra = so.finish(cx);
            if let Some(service_id) = service_id {
                cx.refs.push(Ref {
                    from: i,
                    target: service_id.clone(),
                    path: sid_path,
                    kind: RefKind::EventSource,
                });
                source.push(EventSource {
                    service_id,
                    metric_id,
                    extra,
                });
            }
        }
    }
    let cpath = o.at("condition");
    let condition = o
        .require("condition", cx)
        .and_then(|v| obj(v, &cpath, cx))
        .and_then(|mut c| {
            let qpath = c.at("promQuery");
            let prom_query = c.require("promQuery", cx).and_then(|v| text(v, &qpath, cx));
            if prom_query.as_deref().is_some_and(|q| q.trim().is_empty()) {
                cx.error(&qpath, "must not be empty");
            }
            let gpath = c.at("gracePeriod");
            let grace_period = opt_text(&mut c, "gracePeriod", cx);
            if let Some(g) = &grace_period
                && !is_prom_duration(g)
            {
                cx.error(
                    &gpath,
                    format!(
                        "expected a Prometheus duration such as 30s, 2m or 1h30m, got {}",
                        q(g)
                    ),
                );
            }
            let description = opt_text(&mut c, "description", cx);
            let extra = c.finish(cx);
            Some(EventCondition {
                prom_query: prom_query?,
                grace_period,
                description,
                extra,
            })
        });
    let extra = o.finish(cx);
    Some(Event {
        id: id?,
        source,
        condition: condition?,
        extra,
    })
}

pub(super) fn intent(mut o: Obj<'_>, i: usize, cx: &mut Cx) -> Intent {
    let cpath = o.at("compute");
    let compute = match o.get("compute") {
        Some(v) => obj(v, &cpath, cx)
            .map(|c| compute(c, cx))
            .unwrap_or_default(),
        None => {
            cx.warn(&cpath, "missing; assuming small cpu, ram and storage");
            Compute::default()
        }
    };
    let cp_path = o.at("connectionPoints");
    let connection_points = id_list(
        o.get("connectionPoints"),
        &cp_path,
        i,
        RefKind::ConnectionPoint,
        cx,
    );
    let npath = o.at("network");
    let network = match o.get("network") {
        Some(v) => obj(v, &npath, cx)
            .map(|n| network(n, i, cx))
            .unwrap_or_default(),
        None => Network::default(),
    };
    let co_location = co_location(&mut o, i, cx);
    let mpath = o.at("metrics");
    let metrics = o
        .get("metrics")
        .and_then(|v| list(v, &mpath, cx))
        .map(<[Value]>::to_vec)
        .unwrap_or_default();
    let spath = o.at("scaling");
    let scaling = o
        .get("scaling")
        .and_then(|v| obj(v, &spath, cx))
        .and_then(|s| scaling(s, cx));
    Intent {
        compute,
        connection_points,
        network,
        co_location,
        metrics,
        scaling,
        extra: o.finish(cx),
    }
}

pub(super) fn co_location(o: &mut Obj<'_>, i: usize, cx: &mut Cx) -> Vec<CoLocation> {
    let path = o.at("coLocation");
    let Some(items) = o.get("coLocation").and_then(|v| list(v, &path, cx)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (k, item) in items.iter().enumerate() {
        let p = index(&path, k);
        // `{id: other}` per the model; a bare `other` is accepted too.
        let (id, id_path, extra) = match item {
            Value::Object(_) => {
                let Some(mut c) = obj(item, &p, cx) else {
                    continue;
                };
                let id_path = c.at("id");
                let id = c.require("id", cx).and_then(|v| text(v, &id_path, cx));
                let extra = c.finish(cx);
                (id, id_path, extra)
            }
            other => (text(other, &p, cx), p.clone(), Extra::new()),
        };
        if let Some(id) = id {
            cx.refs.push(Ref {
                from: i,
                target: id.clone(),
                path: id_path,
                kind: RefKind::CoLocation,
            });
            out.push(CoLocation { id, extra });
        }
    }
    out
}
