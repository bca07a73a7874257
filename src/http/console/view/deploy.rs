//! The deploy form and what it answered (stored, invalid with every problem, refused).

use super::*;

/// A problem found in a submitted descriptor.
#[derive(Debug, Clone)]
pub struct FormProblem {
    pub path: String,
    pub message: String,
}

/// What the deploy page shows below the form.
#[derive(Debug, Clone)]
pub enum DeployOutcome {
    Nothing,
    /// The descriptor was refused.
    Problems {
        detail: String,
        problems: Vec<FormProblem>,
    },
    /// A dry run: placement, explanations and objects; nothing stored.
    DryRun {
        graph: String,
        placement: BTreeMap<String, String>,
        explanations: BTreeMap<String, String>,
        objects: Vec<serde_json::Value>,
        helm_services: Vec<String>,
        warnings: Vec<FormProblem>,
    },
}

/// The deploy page: paste or upload a descriptor, dry-run it, deploy it.
pub fn deploy(project: &str, descriptor: &str, outcome: &DeployOutcome) -> String {
    let mut m = String::from("<h1>Deploy a graph</h1>");
    // Problems come first, where the eye lands after submitting; a dry run's result follows the form.
    if let DeployOutcome::Problems { detail, problems } = outcome {
        let _ = write!(
            m,
            "<section class=\"problems\" role=\"alert\" aria-labelledby=\"h-problems\"><h2 id=\"h-problems\">Not deployed: {}</h2>",
            esc(detail)
        );
        if !problems.is_empty() {
            m.push_str("<table class=\"list\" id=\"problems\"><thead><tr><th scope=\"col\">Path</th><th scope=\"col\">Problem</th></tr></thead><tbody>");
            for p in problems {
                let _ = write!(
                    m,
                    "<tr><th scope=\"row\"><code>{}</code></th><td>{}</td></tr>",
                    esc(&p.path),
                    esc(&p.message)
                );
            }
            m.push_str("</tbody></table>");
        }
        m.push_str("<p>Nothing was stored.</p></section>");
    }
    let _ = write!(
        m,
        "<form method=\"post\" action=\"/console/deploy\" class=\"card deploy\" id=\"deploy-form\">\
<label for=\"project\">Project</label><input id=\"project\" name=\"project\" value=\"{}\" required pattern=\"[a-z0-9]([-a-z0-9]*[a-z0-9])?\" aria-describedby=\"project-hint\">\
<p class=\"hint\" id=\"project-hint\">The Kubernetes namespace the graph runs in (a DNS label).</p>\
<label for=\"descriptor\">Descriptor (HDAG, YAML or JSON)</label>\
<textarea id=\"descriptor\" name=\"descriptor\" rows=\"18\" spellcheck=\"false\" required>{}</textarea>\
<label for=\"upload\">…or upload a file</label><input id=\"upload\" type=\"file\" accept=\".yaml,.yml,.json\" data-fills=\"descriptor\">\
<div class=\"buttons\"><button type=\"submit\" name=\"action\" value=\"dry-run\" id=\"dry-run\">Dry run</button>\
<button type=\"submit\" name=\"action\" value=\"deploy\" id=\"deploy\" class=\"primary\">Deploy</button></div></form>",
        esc(project),
        esc(descriptor)
    );
    match outcome {
        DeployOutcome::Nothing | DeployOutcome::Problems { .. } => {}
        DeployOutcome::DryRun {
            graph,
            placement,
            explanations,
            objects,
            helm_services,
            warnings,
        } => {
            let _ = write!(
                m,
                "<section aria-labelledby=\"h-dry\" id=\"dry-run-result\"><h2 id=\"h-dry\">Dry run of {}: nothing stored</h2>",
                esc(graph)
            );
            for w in warnings {
                let _ = write!(
                    m,
                    "<p class=\"warning\">warning at <code>{}</code>: {}</p>",
                    esc(&w.path),
                    esc(&w.message)
                );
            }
            m.push_str("<table class=\"list\" id=\"dry-placement\"><thead><tr><th scope=\"col\">Service</th><th scope=\"col\">Cluster</th><th scope=\"col\">Why</th></tr></thead><tbody>");
            for (s, c) in placement {
                let _ = write!(
                    m,
                    "<tr><th scope=\"row\">{}</th><td>{}</td><td>{}</td></tr>",
                    esc(s),
                    esc(c),
                    esc(explanations.get(s).map_or("", String::as_str))
                );
            }
            m.push_str("</tbody></table>");
            if !helm_services.is_empty() {
                let _ = write!(
                    m,
                    "<p>Installed as Helm releases: {}</p>",
                    esc(&helm_services.join(", "))
                );
            }
            let _ = write!(
                m,
                "<h3>{} objects that would be applied</h3><ul class=\"objects\">",
                objects.len()
            );
            for o in objects {
                let kind = o["kind"].as_str().unwrap_or("?");
                let name = o["metadata"]["name"].as_str().unwrap_or("?");
                let _ = write!(
                    m,
                    "<li><details><summary>{} <code>{}</code></summary>{}</details></li>",
                    esc(kind),
                    esc(name),
                    json_block(o)
                );
            }
            m.push_str("</ul></section>");
        }
    }
    m
}
