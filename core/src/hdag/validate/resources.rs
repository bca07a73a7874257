//! The descriptor's resource sections, one reader each: compute, network, scaling, artifact, ports.

use super::*;

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
