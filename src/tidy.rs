//! Tidy tests: the architecture's invariants, enforced (ARCHITECTURE.md names each).

/// The module map above names every public module: a newcomer's first hop must not miss one.
#[test]
fn the_module_map_names_every_module() {
    let lib = include_str!("lib.rs");
    let (map, code) = lib
        .split_once("\npub mod ")
        .expect("modules follow the map");
    let code = format!("pub mod {code}");
    let modules: Vec<&str> = code
        .lines()
        .filter_map(|l| l.strip_prefix("pub mod "))
        .filter_map(|l| l.strip_suffix(';'))
        .collect();
    assert!(modules.len() >= 10, "{modules:?}");
    for m in modules {
        assert!(
            map.contains(&format!("[`{m}`]")),
            "module {m} is missing from the module map in src/lib.rs"
        );
    }
}

/// ARCHITECTURE.md's first invariant, enforced: the pure core (descriptor, placement,
/// scaling, manifest, dashboard and page rendering) does no I/O, so it never names a database,
/// Kubernetes, HTTP or async-runtime crate, nor std's file, network or process modules. Unit
/// tests may (they read fixtures), and so may the named adapter beside the pure code.
#[test]
fn pure_modules_do_no_io() {
    // hdag, placement, scaling, plan, manifests and monitoring's pure half live in smo-core,
    // whose dependencies prove it (below); what is pure and still here is checked by words.
    const PURE: &[&str] = &["access.rs", "http/compat.rs", "http/console/view"];
    const ADAPTERS: &[&str] = &[];
    const FORBIDDEN: &[&str] = &[
        "sqlx",
        "kube::",
        "reqwest",
        "tokio",
        "poem",
        "std::fs",
        "std::net",
        "std::process",
    ];
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    let mut todo: Vec<std::path::PathBuf> = PURE.iter().map(|p| src.join(p)).collect();
    while let Some(path) = todo.pop() {
        if path.is_dir() {
            for e in std::fs::read_dir(&path).unwrap() {
                todo.push(e.unwrap().path());
            }
        } else {
            files.push(path);
        }
    }
    let mut found = Vec::new();
    for f in files {
        let rel = f.strip_prefix(&src).unwrap().display().to_string();
        if f.file_name().is_some_and(|n| n == "tests.rs") || ADAPTERS.contains(&rel.as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        // Unit tests at the end of a file may read fixtures.
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for (i, line) in code.lines().enumerate() {
            let line = line.trim_start();
            if line.starts_with("//") {
                continue;
            }
            for word in FORBIDDEN {
                if line.contains(word) {
                    found.push(format!("src/{rel}:{}: {word}", i + 1));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "I/O in the pure core:\n{}",
        found.join("\n")
    );
}

/// No import circle between the top-level modules of `src/` or of the engine's `jobs/src/`:
/// the layers read bottom-up (settings and store below federation and plan, those below
/// reconcile and http, server above them, bench and cli on top), so a change to a lower
/// layer never has to know an upper one. A module's non-test code naming `crate::m…` (or an
/// item the crate root re-exports from `m`) is an edge to `m`.
#[test]
fn no_import_circle_between_modules() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut circles = Vec::new();
    for dir in ["src", "jobs/src"] {
        let graph = module_graph(&root.join(dir));
        assert!(graph.len() >= 8, "{dir}: {graph:?}");
        if let Some(circle) = find_circle(&graph) {
            circles.push(format!("{dir}: {}", circle.join(" -> ")));
        }
    }
    assert!(
        circles.is_empty(),
        "import circles:\n{}",
        circles.join("\n")
    );
}

/// The circle finder finds one, and the edge reader sees grouped and re-exported paths.
#[test]
fn the_circle_finder_sees_a_circle_through_a_group_and_a_re_export() {
    let code = "use crate::{a::X, b};\nfn f() { crate::Thing::new() }\n// crate::c in a comment\n";
    let exports = [("Thing".to_string(), "d".to_string())].into();
    let modules = ["a", "b", "c", "d", "e"].map(String::from).into();
    let edges = edges_of(code, "e", &modules, &exports);
    assert_eq!(edges, ["a", "b", "d"].map(String::from).into());
    let mut graph = Graph::new();
    graph.insert("e".into(), edges);
    graph.insert("d".into(), ["c".to_string()].into());
    assert_eq!(find_circle(&graph), None);
    graph.insert("c".into(), ["e".to_string()].into());
    assert_eq!(
        find_circle(&graph).unwrap(),
        ["c", "e", "d", "c"].map(String::from)
    );
}

type Graph = std::collections::BTreeMap<String, std::collections::BTreeSet<String>>;

/// The top-level modules of a crate's source directory and the modules each one names.
fn module_graph(dir: &std::path::Path) -> Graph {
    let lib = std::fs::read_to_string(dir.join("lib.rs")).unwrap();
    let mut modules = std::collections::BTreeSet::new();
    let mut files: Vec<(String, std::path::PathBuf)> = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        if matches!(name.as_str(), "lib" | "main" | "bin") {
            continue;
        }
        modules.insert(name.clone());
        let mut todo = vec![path];
        while let Some(p) = todo.pop() {
            if p.is_dir() {
                todo.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
            } else if p.extension().is_some_and(|x| x == "rs")
                && p.file_name().is_some_and(|n| n != "tests.rs")
            {
                files.push((name.clone(), p));
            }
        }
    }
    // `pub use m::{A, B};` at the crate root: naming crate::A is naming m.
    let mut exports = std::collections::HashMap::new();
    for stmt in lib.split(';') {
        let Some(rest) = stmt.trim().strip_prefix("pub use ") else {
            continue;
        };
        let Some((module, items)) = rest.split_once("::") else {
            continue;
        };
        for item in items.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
            if !item.is_empty() {
                exports.insert(item.to_string(), module.to_string());
            }
        }
    }
    let mut graph = Graph::new();
    for (module, file) in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let code = text
            .split("#[cfg(test)]\nmod tests")
            .next()
            .unwrap_or_default();
        let edges = edges_of(code, &module, &modules, &exports);
        graph.entry(module).or_default().extend(edges);
    }
    graph
}

/// The modules `code` (in `module`) names through `crate::`, comments aside.
fn edges_of(
    code: &str,
    module: &str,
    modules: &std::collections::BTreeSet<String>,
    exports: &std::collections::HashMap<String, String>,
) -> std::collections::BTreeSet<String> {
    let code: String = code
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut named = Vec::new();
    for (_, rest) in code
        .match_indices("crate::")
        .map(|(i, _)| ((), &code[i + 7..]))
    {
        if let Some(group) = rest.strip_prefix('{') {
            // The first segment of each item at depth 0 of `{…}`.
            let (mut depth, mut start) = (0, true);
            let mut word = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if start && (c.is_alphanumeric() || c == '_') => word.push(c),
                    _ if !word.is_empty() => {
                        named.push(std::mem::take(&mut word));
                        start = false;
                    }
                    _ => {}
                }
            }
            if !word.is_empty() {
                named.push(word);
            }
        } else {
            let word: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            named.push(word);
        }
    }
    named
        .into_iter()
        .filter_map(|w| {
            if modules.contains(&w) {
                Some(w)
            } else {
                exports.get(&w).cloned()
            }
        })
        .filter(|m| m != module)
        .collect()
}

/// One circle of `graph` as a path that ends where it starts, if there is one.
fn find_circle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        graph: &Graph,
        at: &str,
        path: &mut Vec<String>,
        done: &mut std::collections::BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == at) {
            let mut circle = path[i..].to_vec();
            circle.push(at.to_string());
            return Some(circle);
        }
        if done.contains(at) {
            return None;
        }
        path.push(at.to_string());
        for next in graph.get(at).into_iter().flatten() {
            if let Some(c) = visit(graph, next, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(at.to_string());
        None
    }
    let mut done = std::collections::BTreeSet::new();
    graph
        .keys()
        .find_map(|m| visit(graph, m, &mut Vec::new(), &mut done))
}

/// smo-core's purity is its dependency tree: no database, Kubernetes, HTTP, async-runtime or
/// job-engine crate may be reachable from it. Walks Cargo.lock (what `cargo tree -p smo-core`
/// shows, dev-dependencies included), so adding one anywhere below smo-core fails here.
#[test]
fn smo_core_reaches_no_io_crate() {
    const FORBIDDEN: &[&str] = &[
        "sqlx",
        "sqlx-core",
        "tokio",
        "kube",
        "kube-client",
        "reqwest",
        "hyper",
        "poem",
        "poem-openapi",
        "apalis",
        "apalis-postgres",
        "smo-jobs",
        "smo-sim",
        "k8s-openapi",
    ];
    let lock = include_str!("../Cargo.lock");
    let mut deps: std::collections::HashMap<&str, Vec<&str>> = Default::default();
    for block in lock.split("[[package]]").skip(1) {
        let name = block
            .lines()
            .find_map(|l| l.strip_prefix("name = \""))
            .and_then(|l| l.strip_suffix('"'))
            .unwrap_or_default();
        let listed = block
            .split_once("dependencies = [")
            .map(|(_, rest)| rest.split(']').next().unwrap_or_default())
            .unwrap_or_default();
        // Every version of a name together (a lock may hold several).
        deps.entry(name).or_default().extend(
            listed
                .lines()
                .filter_map(|l| l.trim().strip_prefix('"'))
                .filter_map(|l| l.split(['"', ' ']).next()),
        );
    }
    assert!(
        deps.contains_key("smo-core"),
        "smo-core is not in Cargo.lock"
    );
    let (mut seen, mut todo) = (std::collections::HashSet::new(), vec!["smo-core"]);
    while let Some(p) = todo.pop() {
        if seen.insert(p) {
            todo.extend(deps.get(p).into_iter().flatten());
        }
    }
    assert!(
        seen.contains("good_lp") && seen.contains("serde"),
        "{seen:?}"
    );
    let found: Vec<&&str> = FORBIDDEN.iter().filter(|f| seen.contains(*f)).collect();
    assert!(found.is_empty(), "smo-core reaches {found:?}");
}

/// Binaries are thin shells over library modules (`cli::smo`, `cli::admin`, …): what a
/// command does is testable and reusable without spawning a process. Each stays under
/// `BINARY_BUDGET` (100) lines.
#[test]
fn binaries_stay_within_their_line_budget() {
    const BINARY_BUDGET: usize = 100;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut bins = Vec::new();
    for dir in ["src/bin", "jobs/src/bin"] {
        for e in std::fs::read_dir(root.join(dir)).unwrap() {
            bins.push(e.unwrap().path());
        }
    }
    bins.push(root.join("api/sdk-gen/src/main.rs"));
    assert!(bins.len() >= 4, "{bins:?}");
    let over: Vec<String> = bins
        .iter()
        .map(|p| (p, std::fs::read_to_string(p).unwrap().lines().count()))
        .filter(|(_, n)| *n > BINARY_BUDGET)
        .map(|(p, n)| format!("{}: {n} lines", p.strip_prefix(root).unwrap().display()))
        .collect();
    assert!(
        over.is_empty(),
        "binaries over {BINARY_BUDGET} lines (move the code into a library module):\n{}",
        over.join("\n")
    );
}

/// No source file of the server crates over `FILE_BUDGET` (800) lines of non-test code: past
/// that, a file holds several things a reader must tell apart (the engine's producer,
/// completer and rescuer; a page each of the console). An inline `mod tests` at the end of a
/// file and `tests.rs` files do not count.
#[test]
fn source_files_stay_within_their_line_budget() {
    const FILE_BUDGET: usize = 800;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut over = Vec::new();
    let mut seen = 0;
    let mut todo: Vec<std::path::PathBuf> = ["src", "jobs/src", "core/src", "sim/src"]
        .iter()
        .map(|d| root.join(d))
        .collect();
    while let Some(path) = todo.pop() {
        if path.is_dir() {
            if !path.ends_with("tests") {
                todo.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            }
            continue;
        }
        if path.extension().is_none_or(|x| x != "rs")
            || path.file_name().is_some_and(|n| n == "tests.rs")
        {
            continue;
        }
        seen += 1;
        let text = std::fs::read_to_string(&path).unwrap();
        // Only an inline test module ends the count (`#[cfg(test)] mod tests;` does not).
        let code = text
            .split("#[cfg(test)]\nmod tests {")
            .next()
            .unwrap_or_default();
        let lines = code.lines().count();
        if lines > FILE_BUDGET {
            over.push(format!(
                "{}: {lines}",
                path.strip_prefix(root).unwrap().display()
            ));
        }
    }
    assert!(seen > 100, "{seen} files");
    assert!(
        over.is_empty(),
        "files over {FILE_BUDGET} lines of non-test code (split them by concern):\n{}",
        over.join("\n")
    );
}

/// The README's error table lists every problem `type` and its decision-log line every
/// decision kind: both are wire contracts scripts branch on, so a kind renamed or added in
/// smo-core without the README fails here.
#[test]
fn the_readme_names_every_problem_and_decision_kind() {
    let readme = include_str!("../README.md");
    let table: String = readme
        .lines()
        .filter(|l| l.starts_with("| `"))
        .collect::<Vec<_>>()
        .join("\n");
    let log = readme
        .split("what each entry is about in its `kind`:")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").next())
        .expect("the README's decision-log paragraph");
    let mut missing = Vec::new();
    for k in smo_core::model::ProblemKind::ALL {
        if !table.contains(&format!("`{k}`")) {
            missing.push(format!("problem {k}"));
        }
    }
    for k in smo_core::model::DecisionKind::ALL {
        if !log.contains(&format!("`{k}`")) {
            missing.push(format!("decision {k}"));
        }
    }
    assert!(missing.is_empty(), "not in README.md: {missing:?}");
}

/// Every named mutant of docs/mutants.tsv still applies: its text occurs exactly once in its
/// file, so `scripts/mutants --listed` mutates what GUARANTEES.md says it does (a file split
/// or an edit would otherwise leave a row that mutates nothing).
#[test]
fn every_listed_mutant_still_applies() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let table = include_str!("../docs/mutants.tsv");
    let mut stale = Vec::new();
    let mut rows = 0;
    for row in table
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let f: Vec<&str> = row.split('\t').collect();
        assert!(f.len() >= 5, "a row of five columns: {row}");
        rows += 1;
        let old = f[3].replace("\\n", "\n").replace("\\t", "\t");
        let text = std::fs::read_to_string(root.join(f[2])).unwrap_or_default();
        let n = text.matches(&old).count();
        if n != 1 {
            stale.push(format!("{} ({}): found {n} times", f[0], f[2]));
        }
    }
    assert!(rows >= 40, "{rows} rows");
    assert!(
        stale.is_empty(),
        "stale rows in docs/mutants.tsv:\n{}",
        stale.join("\n")
    );
}

/// What the server does not run, it does not link when built without default features: the
/// sim, the benchmarks (and plain apalis-postgres, their peer) and apalis-board are optional
/// dependencies behind features (`.ci/run` lints that build); the tests get the sim as a
/// dev-dependency.
#[test]
fn the_server_build_links_no_sim_benchmark_or_board() {
    let smo = include_str!("../Cargo.toml");
    let jobs = include_str!("../jobs/Cargo.toml");
    let dependency = |manifest: &str, name: &str| -> String {
        let deps = manifest
            .split("[dependencies]")
            .nth(1)
            .and_then(|d| d.split("\n[").next())
            .unwrap_or_default();
        deps.lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} is not a dependency"))
            .to_string()
    };
    assert!(dependency(smo, "smo-sim").contains("optional = true"));
    assert!(dependency(smo, "smo-jobs").contains("default-features = false"));
    for dep in ["apalis-postgres", "apalis-board-api", "axum"] {
        assert!(
            dependency(jobs, dep).contains("optional = true"),
            "smo-jobs links {dep} in every build"
        );
    }
    assert!(smo.contains("default = [\"sim\", \"bench\", \"board\"]"));
}

/// The simulated federation is a test and demo tool that knows nothing of smo: its crate
/// must not depend on any of smo's.
#[test]
fn the_sim_crate_does_not_depend_on_smo() {
    let manifest = include_str!("../sim/Cargo.toml");
    for dep in ["smo =", "smo-jobs", "smo-sdk", "path = \"..\""] {
        assert!(!manifest.contains(dep), "sim/Cargo.toml names {dep}");
    }
}
