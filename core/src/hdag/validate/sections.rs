//! The descriptor's sections, one reader each: graph, intent, service, deployment, trigger,
//! events, compute, network, scaling, artifact, ports.

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

pub(super) fn compute(mut o: Obj<'_>, cx: &mut Cx) -> Compute {
    fn size<T: Default>(
        o: &mut Obj<'_>,
        key: &'static str,
        parse: fn(&str) -> Result<T, String>,
        cx: &mut Cx,
    ) -> T {
        let path = o.at(key);
        match o.get(key) {
            None => {
                cx.warn(&path, "missing; assuming small");
                T::default()
            }
            Some(v) => match v {
                Value::String(_) | Value::Number(_) => {
                    let raw = text(v, &path, cx).unwrap_or_default();
                    parse(&raw).unwrap_or_else(|e| {
                        cx.error(&path, e);
                        T::default()
                    })
                }
                other => {
                    cx.error(
                        &path,
                        format!(
                            "expected one of light|small|medium|large or a Kubernetes quantity, got {}",
                            describe(other)
                        ),
                    );
                    T::default()
                }
            },
        }
    }
    let cpu = size(&mut o, "cpu", CpuSize::parse, cx);
    let ram = size(&mut o, "ram", RamSize::parse, cx);
    let storage = size(&mut o, "storage", StorageSize::parse, cx);
    let gpu = opt_toggle(&mut o, "gpu", cx);
    Compute {
        cpu,
        ram,
        storage,
        gpu,
        extra: o.finish(cx),
    }
}

pub(super) fn network(mut o: Obj<'_>, i: usize, cx: &mut Cx) -> Network {
    let lpath = o.at("latencies");
    let mut latencies = Vec::new();
    if let Some(items) = o.get("latencies").and_then(|v| list(v, &lpath, cx)) {
        for (k, item) in items.iter().enumerate() {
            let p = index(&lpath, k);
            let Some(mut l) = obj(item, &p, cx) else {
                continue;
            };
            let connection_point = opt_text(&mut l, "connectionPoint", cx).unwrap_or_default();
            if !connection_point.is_empty() {
                cx.refs.push(Ref {
                    from: i,
                    target: connection_point.clone(),
                    path: l.at("connectionPoint"),
                    kind: RefKind::Latency,
                });
            }
            let qos = opt_text(&mut l, "qos", cx);
            if let Some(q) = &qos
                && !["ultralow", "low", "best-effort"].contains(&q.as_str())
            {
                cx.warn(
                    &l.at("qos"),
                    format!(
                        "expected one of ultralow|low|best-effort, got {}",
                        self::q(q)
                    ),
                );
            }
            latencies.push(Latency {
                connection_point,
                qos,
                extra: l.finish(cx),
            });
        }
    }
    let dpath = o.at("deviceProximity");
    let device_proximity = o.get("deviceProximity").map(|v| toggle(v, &dpath, cx));
    let cp_path = o.at("connectionPoints");
    let connection_points = id_list(
        o.get("connectionPoints"),
        &cp_path,
        i,
        RefKind::ConnectionPoint,
        cx,
    );
    let co_location = co_location(&mut o, i, cx);
    let mpath = o.at("metrics");
    let metrics = o
        .get("metrics")
        .and_then(|v| list(v, &mpath, cx))
        .map(<[Value]>::to_vec)
        .unwrap_or_default();
    Network {
        latencies,
        device_proximity,
        connection_points,
        co_location,
        metrics,
        extra: o.finish(cx),
    }
}

pub(super) fn scaling(mut o: Obj<'_>, cx: &mut Cx) -> Option<Scaling> {
    let min_path = o.at("minReplicas");
    let min_replicas = match o.get("minReplicas") {
        Some(v) => uint(v, &min_path, cx),
        None => Some(1),
    };
    if min_replicas == Some(0) {
        cx.error(&min_path, "must be at least 1");
    }
    let max_path = o.at("maxReplicas");
    let max_replicas = o
        .require("maxReplicas", cx)
        .and_then(|v| uint(v, &max_path, cx));
    if let (Some(lo), Some(hi)) = (min_replicas, max_replicas)
        && lo > hi
    {
        cx.error(
            &min_path,
            format!("minReplicas ({lo}) is greater than maxReplicas ({hi})"),
        );
    }
    let alpha_path = o.at("alpha");
    let alpha = o
        .require("alpha", cx)
        .and_then(|v| number(v, &alpha_path, cx));
    if let Some(a) = alpha
        && a <= 0.0
    {
        cx.error(
            &alpha_path,
            format!("must be greater than 0 (requests per second one replica serves), got {a}"),
        );
    }
    let beta_path = o.at("beta");
    let beta = match o.get("beta") {
        Some(v) => number(v, &beta_path, cx),
        None => Some(0.0),
    };
    let metric = opt_text(&mut o, "metric", cx);
    if metric.as_deref().is_some_and(|m| m.trim().is_empty()) {
        cx.error(&o.at("metric"), "must not be empty");
    }
    let extra = o.finish(cx);
    Some(Scaling {
        min_replicas: min_replicas?,
        max_replicas: max_replicas?,
        alpha: alpha?,
        beta: beta?,
        metric,
        extra,
    })
}

pub(super) fn artifact(mut o: Obj<'_>, cx: &mut Cx) -> Artifact {
    let oci_path = o.at("ociImage");
    let oci_image = opt_text(&mut o, "ociImage", cx);
    if let Some(problem) = oci_image.as_deref().and_then(oci_ref_problem) {
        cx.error(&oci_path, problem);
    }
    let image_path = o.at("image");
    let image = opt_text(&mut o, "image", cx);
    if let Some(img) = &image
        && (img.is_empty() || img.chars().any(char::is_whitespace))
    {
        cx.error(
            &image_path,
            format!("expected a container image reference, got {}", q(img)),
        );
    }
    match (&oci_image, &image) {
        (None, None) => cx.error(
            &o.path,
            "expected ociImage (a Helm chart) or image (a container image)",
        ),
        (Some(_), Some(_)) => cx.error(
            &image_path,
            "set either ociImage (a Helm chart) or image (a container image), not both",
        ),
        _ => {}
    }
    let cpath = o.at("ociConfig");
    let oci_config = o
        .get("ociConfig")
        .and_then(|v| obj(v, &cpath, cx))
        .and_then(|mut c| {
            let tpath = c.at("type");
            let kind = c.require("type", cx).and_then(|v| {
                one_of(
                    v,
                    &tpath,
                    &[("App", ArtifactType::App), ("VO", ArtifactType::VO)],
                    cx,
                )
            });
            let ipath = c.at("implementer");
            let implementer = c.require("implementer", cx).and_then(|v| {
                one_of(
                    v,
                    &ipath,
                    &[("HELM", Implementer::Helm), ("WOT", Implementer::Wot)],
                    cx,
                )
            });
            let extra = c.finish(cx);
            Some(OciConfig {
                kind: kind?,
                implementer: implementer?,
                extra,
            })
        });
    let rpath = o.at("ociRun");
    let oci_run = o
        .get("ociRun")
        .and_then(|v| obj(v, &rpath, cx))
        .map(|mut r| {
            let name = opt_text(&mut r, "name", cx).unwrap_or_default();
            let version = opt_text(&mut r, "version", cx).unwrap_or_default();
            OciRun {
                name,
                version,
                extra: r.finish(cx),
            }
        });
    let vpath = o.at("valuesOverwrite");
    let values_overwrite = match o.get("valuesOverwrite") {
        Some(Value::Object(m)) => m.clone(),
        Some(other) => {
            cx.error(
                &vpath,
                format!("expected a map of Helm values, got {}", describe(other)),
            );
            Map::new()
        }
        None => Map::new(),
    };
    let ppath = o.at("ports");
    let ports = o
        .get("ports")
        .and_then(|v| list(v, &ppath, cx))
        .map(|items| ports(items, &ppath, cx))
        .unwrap_or_default();
    let release_path = o.at("releaseName");
    let release_name = opt_text(&mut o, "releaseName", cx);
    if let Some(r) = &release_name {
        // Helm's own limit on release names, and a DNS label like every name smo writes.
        if let Some(problem) = dns_label_problem(r).or_else(|| {
            (r.len() > 53).then(|| format!("at most 53 characters (Helm's limit), got {}", r.len()))
        }) {
            cx.error(&release_path, problem);
        }
        if oci_image.is_none() {
            cx.warn(
                &release_path,
                "releaseName only applies to Helm charts (ignored)",
            );
        }
    }
    if !ports.is_empty() && image.is_none() {
        cx.warn(
            &ppath,
            "ports only apply to image artifacts (ignored for Helm charts)",
        );
    }
    Artifact {
        oci_image,
        oci_config,
        oci_run,
        values_overwrite,
        image,
        ports,
        release_name,
        extra: o.finish(cx),
    }
}

pub(super) fn ports(items: &[Value], path: &str, cx: &mut Cx) -> Vec<Port> {
    let port_number =
        |v: &Value, p: &str, cx: &mut Cx| match v.as_u64().and_then(|n| u16::try_from(n).ok()) {
            Some(n) if n > 0 => Some(n),
            _ => {
                cx.error(
                    p,
                    format!("expected a port number 1-65535, got {}", describe(v)),
                );
                None
            }
        };
    let mut out: Vec<Port> = Vec::new();
    let mut seen: HashSet<(u16, Protocol)> = HashSet::new();
    for (k, item) in items.iter().enumerate() {
        let p = index(path, k);
        let port = match item {
            Value::Object(_) => {
                let Some(mut po) = obj(item, &p, cx) else {
                    continue;
                };
                let num_path = po.at("port");
                let port = po
                    .require("port", cx)
                    .and_then(|v| port_number(v, &num_path, cx));
                let name_path = po.at("name");
                let name = opt_text(&mut po, "name", cx);
                if let Some(n) = &name
                    && (n.len() > 15 || dns_label_problem(n).is_some())
                {
                    cx.error(
                        &name_path,
                        format!(
                            "{} is not a port name: at most 15 lowercase letters, digits and '-'",
                            q(n)
                        ),
                    );
                }
                let proto_path = po.at("protocol");
                let protocol = match po.get("protocol") {
                    Some(v) => one_of(
                        v,
                        &proto_path,
                        &[
                            ("TCP", Protocol::TCP),
                            ("UDP", Protocol::UDP),
                            ("SCTP", Protocol::SCTP),
                        ],
                        cx,
                    )
                    .unwrap_or_default(),
                    None => Protocol::TCP,
                };
                let extra = po.finish(cx);
                port.map(|port| Port {
                    port,
                    name,
                    protocol,
                    extra,
                })
            }
            // `ports: [8080]` is short for `[{port: 8080}]`.
            other => port_number(other, &p, cx).map(|port| Port {
                port,
                name: None,
                protocol: Protocol::TCP,
                extra: Extra::new(),
            }),
        };
        if let Some(port) = port {
            if !seen.insert((port.port, port.protocol)) {
                cx.error(&p, format!("port {} is listed twice", port.port));
            }
            out.push(port);
        }
    }
    out
}
