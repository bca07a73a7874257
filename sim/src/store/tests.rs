//! The store on its own: writes, patches, apply and its managed fields, selectors, restores.

use super::{fields::has_leaf, *};

fn store() -> Store {
    let mut s = Store::default();
    s.create(Res::Namespace, "", json!({"metadata": {"name": "p"}}))
        .unwrap();
    s
}

fn deploy(name: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": {"a": "1"}},
           "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}}})
}

#[test]
fn merge_patch_follows_rfc7386() {
    let mut t = json!({"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]});
    merge_patch(&mut t, &json!({"a": "z", "c": {"f": null}, "l": [3]}));
    assert_eq!(t, json!({"a": "z", "c": {"d": "e"}, "l": [3]}));
    let mut t = json!([1]);
    merge_patch(&mut t, &json!({"x": 1}));
    assert_eq!(t, json!({"x": 1}));
}

#[test]
fn json_patch_ops() {
    let doc = json!({"a": [1, 2], "b": {"c": 1}});
    let ops = json!([
        {"op": "add", "path": "/a/-", "value": 3},
        {"op": "replace", "path": "/b/c", "value": 2},
        {"op": "copy", "from": "/b", "path": "/d"},
        {"op": "remove", "path": "/a/0"},
        {"op": "move", "from": "/d/c", "path": "/e"},
        {"op": "test", "path": "/e", "value": 2},
    ]);
    assert_eq!(
        json_patch(&doc, &ops).unwrap(),
        json!({"a": [2, 3], "b": {"c": 2}, "d": {}, "e": 2})
    );
    assert!(json_patch(&doc, &json!([{"op": "remove", "path": "/nope"}])).is_err());
    assert!(json_patch(&doc, &json!([{"op": "test", "path": "/b/c", "value": 9}])).is_err());
    assert!(json_patch(&doc, &json!({"op": "add"})).is_err());
}

#[test]
fn selectors() {
    let labels = json!({"app": "web", "tier": "front"});
    let ok = |s: &str| matches_all(&parse_label_selector(s).unwrap(), &labels);
    assert!(ok("app=web,tier==front"));
    assert!(ok("app in (web, api),!gpu,tier"));
    assert!(ok("app notin (api),tier!=back"));
    assert!(!ok("app=api"));
    assert!(!ok("missing"));
    assert!(ok(""));
    assert!(parse_label_selector("a in b").is_err());
    let sel = json!({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["front"]}]});
    assert!(matches_all(&label_selector(&sel).unwrap(), &labels));
    assert!(
        label_selector(&json!({"matchExpressions": [{"key": "a", "operator": "Gt"}]})).is_none()
    );
    assert_eq!(
        parse_field_selector("metadata.name=x").unwrap(),
        vec![("/metadata/name", "x".into(), true)]
    );
    assert!(parse_field_selector("spec.x=1").is_err());
}

#[test]
fn create_sets_metadata_and_conflicts() {
    let mut s = store();
    let d = s.create(Res::Deployment, "p", deploy("web")).unwrap();
    assert_eq!(d["metadata"]["namespace"], "p");
    assert_eq!(d["metadata"]["generation"], 1);
    assert!(d["metadata"]["uid"].is_string());
    assert_eq!(d["metadata"]["resourceVersion"], "2");
    let err = s.create(Res::Deployment, "p", deploy("web")).unwrap_err();
    assert_eq!(err.code(), 409);
    let err = s
        .create(Res::Deployment, "nope", deploy("web"))
        .unwrap_err();
    assert_eq!(
        err,
        ApiError::NotFound {
            res: Res::Namespace,
            name: "nope".into()
        }
    );
    assert_eq!(
        s.create(Res::Deployment, "p", deploy("Bad_Name"))
            .unwrap_err()
            .code(),
        422
    );
    let mut wrong = deploy("x");
    wrong["kind"] = json!("Service");
    assert_eq!(
        s.create(Res::Deployment, "p", wrong).unwrap_err().code(),
        400
    );
}

#[test]
fn stale_resource_version_conflicts_and_noop_keeps_version() {
    let mut s = store();
    let d = s.create(Res::Deployment, "p", deploy("web")).unwrap();
    let key = ObjKey::new(Res::Deployment, "p", "web");
    let same = s.replace(&key, d.clone(), None, Part::Main).unwrap();
    assert_eq!(
        same["metadata"]["resourceVersion"],
        d["metadata"]["resourceVersion"]
    );
    let mut stale = d.clone();
    stale["metadata"]["resourceVersion"] = json!("1");
    assert_eq!(
        s.replace(&key, stale, None, Part::Main).unwrap_err().code(),
        409
    );
    let p = s
        .patch(
            &key,
            PatchType::Merge,
            json!({"spec": {"replicas": 5}}),
            None,
            true,
            Part::Main,
        )
        .unwrap();
    assert_eq!(p["metadata"]["generation"], 2);
    assert_ne!(
        p["metadata"]["resourceVersion"],
        d["metadata"]["resourceVersion"]
    );
    let st = s
        .patch(
            &key,
            PatchType::Merge,
            json!({"status": {"replicas": 1}}),
            None,
            true,
            Part::Main,
        )
        .unwrap();
    assert!(
        st.get("status").is_none(),
        "main resource writes ignore status"
    );
}

#[test]
fn apply_conflicts_name_the_other_manager_and_field_and_force_takes_the_field() {
    let mut s = store();
    let key = ObjKey::new(Res::Deployment, "p", "web");
    let apply = |s: &mut Store, replicas: i64, who: &str, force: bool| {
        let mut d = deploy("web");
        d["spec"]["replicas"] = json!(replicas);
        s.patch(&key, PatchType::Apply, d, Some(who), force, Part::Main)
    };
    apply(&mut s, 2, "alice", false).unwrap();
    // The same value from another manager: shared, no conflict.
    apply(&mut s, 2, "bob", false).unwrap();
    let err = apply(&mut s, 3, "carol", false).unwrap_err();
    assert_eq!(err.code(), 409);
    let st = err.status_json();
    assert_eq!(st["reason"], "Conflict");
    let message = st["message"].as_str().unwrap();
    assert!(
        message.starts_with("Apply failed with 2 conflicts: "),
        "{message}"
    );
    assert!(
        message.contains("conflict with \"alice\" using apps/v1: .spec.replicas"),
        "{message}"
    );
    let causes = st["details"]["causes"].as_array().unwrap();
    assert!(
        causes
            .iter()
            .all(|c| c["reason"] == "FieldManagerConflict" && c["field"] == ".spec.replicas")
    );
    assert_eq!(
        s.get(&key).unwrap()["spec"]["replicas"],
        2,
        "a refused apply changes nothing"
    );
    // Forced: carol takes the field from both.
    let d = apply(&mut s, 3, "carol", true).unwrap();
    assert_eq!(d["spec"]["replicas"], 3);
    for e in d["metadata"]["managedFields"].as_array().unwrap() {
        let owns = has_leaf(&e["fieldsV1"], &["spec".into(), "replicas".into()]);
        assert_eq!(owns, e["manager"] == "carol", "{e}");
    }
    // An update takes ownership without conflict; an apply against it then conflicts.
    s.patch(
        &key,
        PatchType::Merge,
        json!({"spec": {"replicas": 5}}),
        Some("editor"),
        false,
        Part::Main,
    )
    .unwrap();
    let message = apply(&mut s, 3, "carol", false).unwrap_err().to_string();
    assert!(
        message.contains("conflict with \"editor\" using apps/v1: .spec.replicas"),
        "{message}"
    );
}

#[test]
fn apply_creates_merges_and_prunes_own_fields() {
    let mut s = store();
    let key = ObjKey::new(Res::Deployment, "p", "web");
    let mut body = deploy("web");
    body["metadata"]["labels"]["b"] = json!("2");
    let first = s
        .patch(
            &key,
            PatchType::Apply,
            body.clone(),
            Some("smo"),
            true,
            Part::Main,
        )
        .unwrap();
    assert_eq!(first["metadata"]["managedFields"][0]["manager"], "smo");
    let again = s
        .patch(
            &key,
            PatchType::Apply,
            body.clone(),
            Some("smo"),
            true,
            Part::Main,
        )
        .unwrap();
    assert_eq!(first, again);
    s.patch(
        &key,
        PatchType::Merge,
        json!({"metadata": {"labels": {"other": "x"}}}),
        None,
        true,
        Part::Main,
    )
    .unwrap();
    let third = s
        .patch(
            &key,
            PatchType::Apply,
            deploy("web"),
            Some("smo"),
            true,
            Part::Main,
        )
        .unwrap();
    assert_eq!(
        third["metadata"]["labels"],
        json!({"a": "1", "other": "x"}),
        "b pruned, other kept"
    );
    assert_eq!(
        s.patch(
            &key,
            PatchType::Apply,
            deploy("web"),
            None,
            false,
            Part::Main
        )
        .unwrap_err()
        .code(),
        400
    );
}

#[test]
fn delete_namespace_cascades() {
    let mut s = store();
    s.create(Res::Deployment, "p", deploy("web")).unwrap();
    s.delete(&ObjKey::new(Res::Namespace, "", "p")).unwrap();
    assert!(s.list(Res::Deployment, None).is_empty());
    assert_eq!(
        s.delete(&ObjKey::new(Res::Namespace, "", "p"))
            .unwrap_err()
            .code(),
        404
    );
}

#[test]
fn status_json_shape() {
    let st = ApiError::NotFound {
        res: Res::Deployment,
        name: "x".into(),
    }
    .status_json();
    assert_eq!(st["message"], "deployments.apps \"x\" not found");
    assert_eq!(
        st["details"],
        json!({"name": "x", "group": "apps", "kind": "deployments"})
    );
    assert_eq!(st["code"], 404);
    let st = ApiError::Invalid {
        res: Res::ValidatingAdmissionPolicy,
        name: "p".into(),
        message: "spec.validations[0].expression: Invalid value: \"(\": compilation failed".into(),
    }
    .status_json();
    assert_eq!(
        st["details"]["causes"],
        json!([{"reason": "FieldValueInvalid", "field": "spec.validations[0].expression",
                "message": "Invalid value: \"(\": compilation failed"}])
    );
}

/// `entries` reads one kind (and namespace) as a range of the key order: exactly what a scan
/// filtering every object would return, whatever sorts before and after it.
#[test]
fn entries_of_a_kind_are_exactly_its_objects_in_order() {
    let mut s = store();
    for ns in ["a", "p", "z"] {
        if ns != "p" {
            s.create(Res::Namespace, "", json!({"metadata": {"name": ns}}))
                .unwrap();
        }
        for name in ["x", "y"] {
            s.create(Res::Deployment, ns, deploy(name)).unwrap();
            s.create(
                Res::ConfigMap,
                ns,
                json!({"metadata": {"name": name}, "data": {}}),
            )
            .unwrap();
        }
    }
    let scan = |res: Res, ns: Option<&str>| -> Vec<String> {
        s.objects
            .iter()
            .filter(|(k, _)| k.res == res && ns.is_none_or(|n| k.ns == n))
            .map(|(k, _)| format!("{}/{}", k.ns, k.name))
            .collect()
    };
    let ranged = |res: Res, ns: Option<&str>| -> Vec<String> {
        s.entries(res, ns)
            .map(|e| {
                format!(
                    "{}/{}",
                    e.obj["metadata"]["namespace"].as_str().unwrap_or(""),
                    e.obj["metadata"]["name"].as_str().unwrap()
                )
            })
            .collect()
    };
    for res in [Res::Deployment, Res::ConfigMap, Res::Namespace, Res::Secret] {
        for ns in [None, Some("a"), Some("p"), Some("z"), Some("q"), Some("")] {
            assert_eq!(ranged(res, ns), scan(res, ns), "{res:?} in {ns:?}");
        }
    }
    assert_eq!(ranged(Res::Deployment, Some("p")), ["p/x", "p/y"]);
    assert_eq!(ranged(Res::Namespace, None).len(), 3);
}

/// `generation` moves with what is outside `metadata` and `status`: a changed, added or removed
/// field there, never a label or a status.
#[test]
fn only_a_change_beyond_metadata_and_status_moves_the_generation() {
    use super::object::differs_beyond_meta as differs;
    let d = deploy("web");
    let mut labelled = d.clone();
    labelled["metadata"]["labels"]["b"] = json!("2");
    labelled["status"] = json!({"replicas": 3});
    assert!(!differs(&d, &labelled));
    let mut scaled = d.clone();
    scaled["spec"]["replicas"] = json!(3);
    assert!(differs(&d, &scaled) && differs(&scaled, &d));
    let mut added = d.clone();
    added["extra"] = json!(null);
    assert!(
        differs(&d, &added) && differs(&added, &d),
        "a key more is a change, null or not"
    );
    assert!(!differs(&json!(null), &json!({"metadata": {"name": "x"}})));

    let mut s = store();
    s.create(Res::Deployment, "p", d).unwrap();
    let key = ObjKey::new(Res::Deployment, "p", "web");
    let patch = |s: &mut Store, body: Value| {
        s.patch(&key, PatchType::Merge, body, None, true, Part::Main)
            .unwrap()["metadata"]["generation"]
            .clone()
    };
    assert_eq!(
        patch(&mut s, json!({"metadata": {"labels": {"c": "3"}}})),
        1
    );
    assert_eq!(patch(&mut s, json!({"spec": {"paused": true}})), 2);
}
