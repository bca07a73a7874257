//! The slice of Grafana's HTTP API smo publishes dashboards through, so `publish-dashboards`
//! and graph removal can be tested without a Grafana. Any Authorization header is accepted.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::store::now_rfc3339;

struct Stored {
    id: u64,
    version: u64,
    dashboard: Value,
    folder_uid: String,
    created: String,
    updated: String,
}

/// Dashboards by uid.
#[derive(Default)]
pub(crate) struct Dashboards {
    next_id: u64,
    by_uid: BTreeMap<String, Stored>,
}

/// Grafana's slug: lowercase, runs of anything but letters and digits become one `-`.
pub(crate) fn slugify(title: &str) -> String {
    let mut out = String::new();
    for c in title.trim().chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

fn message(code: u16, text: &str) -> (u16, Value) {
    (code, json!({"message": text}))
}

impl Dashboards {
    pub fn len(&self) -> usize {
        self.by_uid.len()
    }

    /// Serves `path` if it is a Grafana route; `None` otherwise.
    pub fn handle(
        &mut self,
        method: &str,
        path: &str,
        query: &BTreeMap<String, String>,
        body: &[u8],
    ) -> Option<(u16, Value)> {
        match (method, path) {
            ("POST", "/api/dashboards/db") => Some(self.save(body)),
            ("GET", "/api/search") => Some((200, self.search(query))),
            (_, p) => {
                let uid = p.strip_prefix("/api/dashboards/uid/")?;
                Some(match method {
                    "GET" => self.get(uid),
                    "DELETE" => self.delete(uid),
                    _ => message(405, "Method not allowed"),
                })
            }
        }
    }

    fn save(&mut self, body: &[u8]) -> (u16, Value) {
        let Ok(req) = serde_json::from_slice::<Value>(body) else {
            return message(400, "bad request data");
        };
        let Some(mut dashboard) = req.get("dashboard").filter(|d| d.is_object()).cloned() else {
            return message(400, "dashboard is required");
        };
        let title = dashboard["title"].as_str().unwrap_or("").trim().to_string();
        if title.is_empty() {
            return (
                400,
                json!({"message": "Dashboard title cannot be empty", "status": "empty-name"}),
            );
        }
        let uid = match dashboard["uid"].as_str() {
            Some(u) if !u.is_empty() => u.to_string(),
            _ => uuid::Uuid::new_v4().simple().to_string()[..9].to_string(),
        };
        let overwrite = req["overwrite"].as_bool().unwrap_or(false);
        let folder_uid = req["folderUid"].as_str().unwrap_or("").to_string();
        let now = now_rfc3339();
        let (id, version, created) = match self.by_uid.get(&uid) {
            Some(_) if !overwrite => {
                return (
                    412,
                    json!({"message": "A dashboard with the same uid already exists", "status": "name-exists"}),
                );
            }
            Some(s) => (s.id, s.version + 1, s.created.clone()),
            None => {
                self.next_id += 1;
                (self.next_id, 1, now.clone())
            }
        };
        dashboard["id"] = json!(id);
        dashboard["uid"] = json!(uid);
        dashboard["version"] = json!(version);
        let slug = slugify(&title);
        self.by_uid.insert(
            uid.clone(),
            Stored {
                id,
                version,
                dashboard,
                folder_uid,
                created,
                updated: now,
            },
        );
        (
            200,
            json!({"id": id, "uid": uid, "url": format!("/d/{uid}/{slug}"), "status": "success",
                   "version": version, "slug": slug}),
        )
    }

    fn get(&self, uid: &str) -> (u16, Value) {
        let Some(s) = self.by_uid.get(uid) else {
            return message(404, "Dashboard not found");
        };
        let slug = slugify(s.dashboard["title"].as_str().unwrap_or(""));
        let meta = json!({
            "type": "db", "slug": slug, "url": format!("/d/{uid}/{slug}"), "version": s.version,
            "created": s.created, "updated": s.updated, "folderUid": s.folder_uid,
            "canSave": true, "canEdit": true, "canAdmin": true, "provisioned": false,
        });
        (200, json!({"dashboard": s.dashboard, "meta": meta}))
    }

    fn delete(&mut self, uid: &str) -> (u16, Value) {
        let Some(s) = self.by_uid.remove(uid) else {
            return message(404, "Dashboard not found");
        };
        let title = s.dashboard["title"].as_str().unwrap_or("").to_string();
        (
            200,
            json!({"id": s.id, "uid": uid, "title": title, "message": format!("Dashboard {title} deleted")}),
        )
    }

    fn search(&self, query: &BTreeMap<String, String>) -> Value {
        let q = query
            .get("query")
            .map(|q| q.to_lowercase())
            .unwrap_or_default();
        let tag = query.get("tag");
        let mut hits: Vec<Value> = self
            .by_uid
            .iter()
            .filter(|(_, s)| {
                let title = s.dashboard["title"].as_str().unwrap_or("").to_lowercase();
                let tags = s.dashboard["tags"].as_array();
                title.contains(&q)
                    && tag.is_none_or(|t| {
                        tags.is_some_and(|ts| ts.iter().any(|x| x.as_str() == Some(t)))
                    })
            })
            .map(|(uid, s)| {
                let title = s.dashboard["title"].as_str().unwrap_or("");
                let slug = slugify(title);
                json!({"id": s.id, "uid": uid, "title": title, "uri": format!("db/{slug}"),
                       "url": format!("/d/{uid}/{slug}"), "slug": slug, "type": "dash-db",
                       "tags": s.dashboard.get("tags").cloned().unwrap_or(json!([])),
                       "isStarred": false, "folderUid": s.folder_uid})
            })
            .collect();
        hits.sort_by(|a, b| a["title"].as_str().cmp(&b["title"].as_str()));
        Value::Array(hits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(d: &mut Dashboards, body: Value) -> (u16, Value) {
        d.handle(
            "POST",
            "/api/dashboards/db",
            &BTreeMap::new(),
            body.to_string().as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn save_get_search_delete() {
        let mut d = Dashboards::default();
        let (code, r) = post(
            &mut d,
            json!({"dashboard": {"uid": "g1", "title": "Graph: Hello World!", "tags": ["smo"]}}),
        );
        assert_eq!(
            (code, r["url"].as_str(), r["version"].as_u64()),
            (200, Some("/d/g1/graph-hello-world"), Some(1))
        );
        assert_eq!(
            post(&mut d, json!({"dashboard": {"uid": "g1", "title": "x"}})).0,
            412
        );
        let (_, r) = post(
            &mut d,
            json!({"dashboard": {"uid": "g1", "title": "Graph"}, "overwrite": true}),
        );
        assert_eq!(r["version"], 2);
        assert_eq!(post(&mut d, json!({"dashboard": {"title": ""}})).0, 400);
        assert_eq!(
            d.handle("POST", "/api/dashboards/db", &BTreeMap::new(), b"{")
                .unwrap()
                .0,
            400
        );
        let (code, got) = d
            .handle("GET", "/api/dashboards/uid/g1", &BTreeMap::new(), b"")
            .unwrap();
        assert_eq!(
            (code, got["dashboard"]["title"].as_str()),
            (200, Some("Graph"))
        );
        let q: BTreeMap<String, String> = [("query".to_string(), "gra".to_string())].into();
        assert_eq!(
            d.handle("GET", "/api/search", &q, b"")
                .unwrap()
                .1
                .as_array()
                .map(Vec::len),
            Some(1)
        );
        assert_eq!(
            d.handle("DELETE", "/api/dashboards/uid/g1", &BTreeMap::new(), b"")
                .unwrap()
                .0,
            200
        );
        let (code, body) = d
            .handle("GET", "/api/dashboards/uid/g1", &BTreeMap::new(), b"")
            .unwrap();
        assert_eq!(
            (code, body),
            (404, json!({"message": "Dashboard not found"}))
        );
        assert!(
            d.handle("GET", "/api/v1/namespaces", &BTreeMap::new(), b"")
                .is_none()
        );
    }

    #[test]
    fn slugs() {
        assert_eq!(slugify("  My -- Dash/board 2 "), "my-dash-board-2");
    }
}
