//! Checks across services, once every id is known: references resolve, dependencies form no
//! cycle.

use super::*;

/// Checks that need every service: unique ids, references, cycles.
pub(super) fn cross_check(seen: &[Option<Seen>], cx: &mut Cx) {
    let mut first: HashMap<&str, usize> = HashMap::new();
    for (i, s) in seen.iter().enumerate() {
        let Some(s) = s else { continue };
        if let Some(&j) = first.get(s.id.as_str()) {
            cx.error(
                &join(&index("services", i), "id"),
                format!("duplicate service id {} (first at services[{j}])", q(&s.id)),
            );
        } else {
            first.insert(&s.id, i);
        }
    }
    let name = |k: usize| {
        seen.get(k)
            .and_then(Option::as_ref)
            .map_or("?", |s| s.id.as_str())
    };
    let n = seen.len();
    let mut calls: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut deps: Vec<Vec<usize>> = vec![Vec::new(); n];
    let refs = std::mem::take(&mut cx.refs);
    for r in &refs {
        if r.from >= n {
            continue;
        }
        let target = first.get(r.target.as_str()).copied();
        match (r.kind, target) {
            (RefKind::EventSource, None) => {
                // Event sources often name a device or virtual object outside the graph.
                cx.warn(
                    &r.path,
                    format!(
                        "{} is not a service of this graph (an external source?)",
                        q(&r.target)
                    ),
                );
            }
            (RefKind::Latency, None) => {
                cx.warn(&r.path, format!("unknown service {}", q(&r.target)))
            }
            (_, None) => cx.error(&r.path, format!("unknown service {}", q(&r.target))),
            (RefKind::ConnectionPoint, Some(t)) if t == r.from => {
                cx.error(&r.path, "a service cannot call itself")
            }
            (RefKind::Dependency, Some(t)) if t == r.from => {
                cx.error(&r.path, "a service cannot depend on itself")
            }
            (RefKind::CoLocation, Some(t)) if t == r.from => {
                cx.warn(&r.path, "a service is always co-located with itself")
            }
            (RefKind::ConnectionPoint, Some(t)) => calls[r.from].push(t),
            (RefKind::Dependency, Some(t)) => {
                deps[r.from].push(t);
                if seen
                    .get(t)
                    .and_then(Option::as_ref)
                    .is_some_and(|s| s.conditional)
                {
                    cx.warn(
                        &r.path,
                        format!(
                            "{} is conditional (deployed when its event fires); {} will not wait for it",
                            q(&r.target),
                            q(name(r.from))
                        ),
                    );
                }
            }
            _ => {}
        }
    }
    for cycle in cycles(&calls) {
        let names: Vec<&str> = cycle.iter().map(|&k| name(k)).collect();
        cx.error(
            &format!(
                "{}.deployment.intent.connectionPoints",
                index("services", cycle[0])
            ),
            format!(
                "cycle in connectionPoints: {} -> {}",
                names.join(" -> "),
                names[0]
            ),
        );
    }
    for cycle in cycles(&deps) {
        let names: Vec<&str> = cycle.iter().map(|&k| name(k)).collect();
        cx.error(
            &format!(
                "{}.deployment.trigger.auto.dependencies",
                index("services", cycle[0])
            ),
            format!(
                "cycle in dependencies: {} -> {}",
                names.join(" -> "),
                names[0]
            ),
        );
    }
}

/// One cycle per strongly connected component of ≥ 2 nodes, starting at its first node in
/// descriptor order. Iterative (Tarjan), so huge graphs cannot overflow the stack.
pub(super) fn cycles(edges: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let n = edges.len();
    let mut idx = vec![usize::MAX; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut comp = vec![usize::MAX; n];
    let mut comps: Vec<Vec<usize>> = Vec::new();
    let mut counter = 0;
    for root in 0..n {
        if idx[root] != usize::MAX {
            continue;
        }
        let mut work: Vec<(usize, usize)> = vec![(root, 0)];
        idx[root] = counter;
        low[root] = counter;
        counter += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(&mut (v, ref mut next)) = work.last_mut() {
            if let Some(&w) = edges[v].get(*next) {
                *next += 1;
                if idx[w] == usize::MAX {
                    idx[w] = counter;
                    low[w] = counter;
                    counter += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    work.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(idx[w]);
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == idx[v] {
                let mut members = Vec::new();
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    comp[w] = comps.len();
                    members.push(w);
                    if w == v {
                        break;
                    }
                }
                comps.push(members);
            }
        }
    }
    let mut out = Vec::new();
    for (c, members) in comps.iter().enumerate() {
        if members.len() < 2 {
            continue;
        }
        let Some(&start) = members.iter().min() else {
            continue;
        };
        // Breadth-first inside the component from `start` until an edge leads back to it.
        // (A map, not a vector of n, so that many small cycles stay linear.)
        let mut parent: HashMap<usize, usize> = HashMap::from([(start, start)]);
        let mut queue = std::collections::VecDeque::from([start]);
        let mut last = None;
        'bfs: while let Some(v) = queue.pop_front() {
            for &w in &edges[v] {
                if w == start {
                    last = Some(v);
                    break 'bfs;
                }
                if comp[w] == c && !parent.contains_key(&w) {
                    parent.insert(w, v);
                    queue.push_back(w);
                }
            }
        }
        let Some(mut v) = last else { continue };
        let mut path = vec![v];
        while v != start {
            let Some(&p) = parent.get(&v) else { break };
            v = p;
            path.push(v);
        }
        path.reverse();
        out.push(path);
    }
    out.sort();
    out
}
