//! The topology drawing: services in layers left to right, callers before callees, as SVG.

use super::*;

/// Node geometry of the topology drawing.
const NODE_W: i64 = 170;
const NODE_H: i64 = 52;
const GAP_X: i64 = 70;
const GAP_Y: i64 = 22;

/// Columns of a left-to-right layered drawing: a service sits one column right of every service
/// that calls it (longest path from the callers; cycles are cut after `n` rounds).
pub fn layers(services: &[ServiceNode]) -> Vec<usize> {
    let index: BTreeMap<&str, usize> = services
        .iter()
        .enumerate()
        .map(|(i, s)| (s.service.name.as_str(), i))
        .collect();
    let mut level = vec![0usize; services.len()];
    for _ in 0..services.len() {
        let mut changed = false;
        for (i, s) in services.iter().enumerate() {
            for c in &s.calls {
                if let Some(&j) = index.get(c.as_str())
                    && j != i
                    && level[j] < level[i] + 1
                    && level[i] + 1 < services.len()
                {
                    level[j] = level[i] + 1;
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    level
}

/// The service topology as SVG: services as boxes coloured (and labelled) by status, conditional
/// ones dashed, an arrow from each service to every service it calls.
pub fn topology_svg(services: &[ServiceNode]) -> String {
    let level = layers(services);
    let mut row_of = vec![0i64; services.len()];
    let mut rows: BTreeMap<usize, i64> = BTreeMap::new();
    for (i, l) in level.iter().enumerate() {
        let r = rows.entry(*l).or_insert(0);
        row_of[i] = *r;
        *r += 1;
    }
    let cols = level.iter().max().map_or(1, |m| m + 1) as i64;
    let max_rows = rows.values().copied().max().unwrap_or(1).max(1);
    let (w, h) = (
        cols * (NODE_W + GAP_X) - GAP_X + 20,
        max_rows * (NODE_H + GAP_Y) - GAP_Y + 20,
    );
    let pos = |i: usize| {
        (
            10 + level[i] as i64 * (NODE_W + GAP_X),
            10 + row_of[i] * (NODE_H + GAP_Y),
        )
    };
    let index: BTreeMap<&str, usize> = services
        .iter()
        .enumerate()
        .map(|(i, s)| (s.service.name.as_str(), i))
        .collect();
    let mut svg = format!(
        "<svg class=\"topology\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-labelledby=\"topo-title\">\
<title id=\"topo-title\">Service topology: {} services</title>\
<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\">\
<path d=\"M0,0 L10,5 L0,10 z\" class=\"arrowhead\"/></marker></defs>",
        services.len()
    );
    for (i, s) in services.iter().enumerate() {
        for c in &s.calls {
            let Some(&j) = index.get(c.as_str()) else {
                continue;
            };
            let ((x1, y1), (x2, y2)) = (pos(i), pos(j));
            let (sx, sy, ex, ey) = (x1 + NODE_W, y1 + NODE_H / 2, x2, y2 + NODE_H / 2);
            let mid = (sx + ex) / 2;
            let _ = write!(
                svg,
                "<path class=\"edge\" d=\"M{sx},{sy} C{mid},{sy} {mid},{ey} {ex},{ey}\" marker-end=\"url(#arrow)\"><title>{} calls {}</title></path>",
                esc(&s.service.name),
                esc(c)
            );
        }
    }
    for (i, s) in services.iter().enumerate() {
        let (x, y) = pos(i);
        let class = format!("st-{}", s.service.status.tone().class());
        let dashed = if s.service.conditional {
            " conditional"
        } else {
            ""
        };
        let where_ = s.service.cluster.as_deref().unwrap_or("not placed");
        let _ = write!(
            svg,
            "<g class=\"node {class}{dashed}\" data-service=\"{n}\"><title>{n}: {st}{cond}, {where_}</title>\
<rect x=\"{x}\" y=\"{y}\" width=\"{NODE_W}\" height=\"{NODE_H}\" rx=\"6\"/>\
<text x=\"{tx}\" y=\"{ty1}\" class=\"name\">{n}</text><text x=\"{tx}\" y=\"{ty2}\" class=\"meta\">{st} · {where_}{cond_short}</text></g>",
            n = esc(&s.service.name),
            st = esc(s.service.status.as_str()),
            where_ = esc(where_),
            cond = if s.service.conditional {
                " (conditional)"
            } else {
                ""
            },
            cond_short = if s.service.conditional { " · ⚡" } else { "" },
            tx = x + 10,
            ty1 = y + 21,
            ty2 = y + 40,
        );
    }
    svg.push_str("</svg>");
    svg
}
