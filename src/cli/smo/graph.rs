//! `smo graph …`: upload, dry run, describe and follow a graph's jobs.

use smo_jobs::JobState;
use std::{io::Write, path::PathBuf, time::Duration};

use clap::Subcommand;
use smo_sdk::{
    Client, DecisionView, DeployGraphResponse, DryRun, GraphDetail, JobAccepted, JobView,
    ProblemItem,
};

use crate::{
    cli::Output,
    settings::{self},
};

use super::{BadInput, mib, opt, s};

#[derive(Subcommand)]
pub(super) enum GraphCmd {
    /// Deploy (or upgrade) a graph from a descriptor file (YAML or JSON; `-` for stdin) or by
    /// reference to a packaged descriptor (`oci://host/repo/name:tag`, `https://…/graph.tar.gz`).
    Deploy {
        /// Descriptor file or artifact reference.
        file: PathBuf,
        /// Project (= Kubernetes namespace).
        #[arg(long, short)]
        project: String,
        /// Follow the job until it ends; exit non-zero if it failed.
        #[arg(long)]
        wait: bool,
        /// Print the placement and the objects that would be applied; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Package a descriptor (a file, or a directory holding one) as a tar.gz for a registry.
    Package {
        /// Descriptor file, or a directory with exactly one *.yaml/*.yml/*.json.
        path: PathBuf,
        /// Output file [default: <graph>-<version>.tgz in the current directory]
        #[arg(long, short = 'O')]
        out: Option<PathBuf>,
    },
    /// Push a descriptor (packaged first if it is not a .tgz) to an OCI registry.
    Push {
        /// Descriptor or package file.
        file: PathBuf,
        /// Target, e.g. oci://registry:5000/graphs/shop:1.0.0.
        reference: String,
        /// Plain HTTP to the registry (loopback registries always are).
        #[arg(long)]
        plain_http: bool,
    },
    /// Validate a descriptor locally (no server needed): every problem with its path.
    Validate {
        /// Descriptor file (YAML or JSON).
        file: PathBuf,
    },
    /// List graphs.
    List {
        /// Only this project.
        #[arg(long, short)]
        project: Option<String>,
    },
    /// Services, clusters, status, recent jobs and decisions of a graph.
    Describe {
        /// Graph name.
        name: String,
    },
    /// Start a stopped graph.
    Start(GraphAction),
    /// Stop a graph (workloads deleted, graph kept).
    Stop(GraphAction),
    /// Re-place a graph (only moved services are re-applied).
    RePlace(GraphAction),
    /// Remove a graph and everything it created.
    Remove(GraphAction),
}

#[derive(clap::Args)]
pub(super) struct GraphAction {
    /// Graph name.
    name: String,
    /// Follow the job until it ends; exit non-zero if it failed.
    #[arg(long)]
    wait: bool,
}

pub(super) async fn graph(client: &Client, cmd: GraphCmd, out: Output) -> anyhow::Result<u8> {
    match cmd {
        GraphCmd::Deploy {
            file,
            project,
            wait,
            dry_run,
        } => {
            let arg = file.to_string_lossy();
            let body = if ["oci://", "http://", "https://"]
                .iter()
                .any(|p| arg.starts_with(p))
            {
                serde_json::to_vec(&serde_json::json!({ "artifact": arg }))?
            } else if file.as_os_str() == "-" {
                let mut b = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut b)?;
                b
            } else {
                std::fs::read(&file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?
            };
            match client
                .deploy_graph(&project, dry_run.then_some(true), body)
                .await?
            {
                DeployGraphResponse::Ok(answer) => {
                    warn(&answer.warnings);
                    print_dry_run(&answer, out)?;
                    Ok(0)
                }
                DeployGraphResponse::Accepted(accepted) => {
                    warn(&accepted.warnings);
                    follow(client, &accepted, wait, out).await
                }
            }
        }
        GraphCmd::Package {
            path,
            out: out_path,
        } => {
            let (name, descriptor) = read_descriptor(&path)?;
            let parsed = crate::hdag::parse(&descriptor)
                .map_err(|e| BadInput(format!("{}: {e}", path.display())))?;
            let tgz = crate::oci::package(&descriptor, &name)?;
            let target = out_path.unwrap_or_else(|| {
                PathBuf::from(format!("{}-{}.tgz", parsed.graph.id, parsed.graph.version))
            });
            std::fs::write(&target, &tgz)
                .map_err(|e| anyhow::anyhow!("{}: {e}", target.display()))?;
            println!(
                "packaged graph {} into {} ({} bytes)",
                parsed.graph.id,
                target.display(),
                tgz.len()
            );
            Ok(0)
        }
        GraphCmd::Push {
            file,
            reference,
            plain_http,
        } => {
            let r = crate::oci::parse_ref(&reference).map_err(|e| BadInput(e.to_string()))?;
            let bytes =
                std::fs::read(&file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let tgz = if bytes.starts_with(&[0x1f, 0x8b]) {
                bytes
            } else {
                crate::hdag::parse(&bytes)
                    .map_err(|e| BadInput(format!("{}: {e}", file.display())))?;
                let name = file
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "graph.yaml".into());
                crate::oci::package(&bytes, &name)?
            };
            let file_settings = settings::load_file().map_err(anyhow::Error::msg)?;
            let mut reg = file_settings.registry();
            reg.plain_http |= plain_http;
            let digest = reg
                .client_for(Some(&r.registry))
                .push_descriptor(&r, &tgz)
                .await?;
            if out == Output::Json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"reference": reference, "digest": digest})
                    )?
                );
            } else {
                println!("pushed {reference} ({digest})");
            }
            Ok(0)
        }
        GraphCmd::Validate { file } => {
            let body =
                std::fs::read(&file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            match crate::hdag::parse(&body) {
                Ok(parsed) => {
                    for w in &parsed.warnings {
                        eprintln!("warning: {}: {}", w.path, w.message);
                    }
                    if out == Output::Json {
                        println!(
                            "{}",
                            serde_json::to_string_pretty(
                                &serde_json::json!({"valid": true, "graph": parsed.graph.id, "warnings": parsed.warnings})
                            )?
                        );
                    } else {
                        println!(
                            "{}: graph {} is valid ({} services)",
                            file.display(),
                            parsed.graph.id,
                            parsed.graph.services.len()
                        );
                    }
                    Ok(0)
                }
                Err(e) => {
                    if out == Output::Json {
                        println!(
                            "{}",
                            serde_json::to_string_pretty(
                                &serde_json::json!({"valid": false, "problems": e.problems()})
                            )?
                        );
                    } else {
                        eprintln!("error: {} is not a valid descriptor:", file.display());
                        for p in e.problems() {
                            eprintln!("  {}: {}", p.path, p.message);
                        }
                    }
                    Ok(2)
                }
            }
        }
        GraphCmd::List { project } => {
            let graphs = match project {
                Some(p) => client.list_project_graphs(&p, None, None).await?,
                None => client.list_graphs(None, None).await?,
            };
            if out == Output::Json {
                println!("{}", serde_json::to_string_pretty(&graphs)?);
                return Ok(0);
            }
            let mut t =
                crate::cli::table(&["name", "project", "version", "status", "desired", "updated"]);
            for g in &graphs {
                t.add_row(vec![
                    g.name.clone(),
                    g.project.clone(),
                    g.version.clone(),
                    g.status.clone(),
                    g.desired.clone(),
                    g.updated_at.clone(),
                ]);
            }
            println!("{t}");
            if graphs.is_empty() {
                println!("(no graphs)");
            }
            Ok(0)
        }
        GraphCmd::Describe { name } => {
            let g = client.get_graph(&name).await?;
            let jobs = client.list_graph_jobs(&name, Some(5)).await?;
            let history = client.graph_history(&name, Some(10)).await?;
            if out == Output::Json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"graph": g, "jobs": jobs, "history": history})
                    )?
                );
                return Ok(0);
            }
            describe(&g, &jobs, &history);
            Ok(0)
        }
        GraphCmd::Start(a) => {
            follow(client, &client.start_graph(&a.name).await?, a.wait, out).await
        }
        GraphCmd::Stop(a) => follow(client, &client.stop_graph(&a.name).await?, a.wait, out).await,
        GraphCmd::RePlace(a) => {
            follow(client, &client.replace_graph(&a.name).await?, a.wait, out).await
        }
        GraphCmd::Remove(a) => {
            follow(client, &client.remove_graph(&a.name).await?, a.wait, out).await
        }
    }
}

/// The descriptor at `path`: the file itself, or the only *.yaml/*.yml/*.json in a directory.
fn read_descriptor(path: &std::path::Path) -> anyhow::Result<(String, Vec<u8>)> {
    let file = if path.is_dir() {
        let mut found: Vec<PathBuf> = std::fs::read_dir(path)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.extension()
                    .is_some_and(|x| x == "yaml" || x == "yml" || x == "json")
            })
            .collect();
        found.sort();
        match found.len() {
            1 => found.remove(0),
            0 => {
                return Err(BadInput(format!(
                    "{}: no *.yaml, *.yml or *.json descriptor",
                    path.display()
                ))
                .into());
            }
            _ => {
                return Err(BadInput(format!(
                    "{}: several descriptors ({}); name one",
                    path.display(),
                    found.len()
                ))
                .into());
            }
        }
    } else {
        path.to_path_buf()
    };
    let bytes = std::fs::read(&file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "graph.yaml".into());
    Ok((name, bytes))
}

fn warn(warnings: &[ProblemItem]) {
    for w in warnings {
        eprintln!("warning: {}: {}", w.path, w.message);
    }
}

/// Prints the accepted job; with `wait`, follows it with a progress line until it ends.
pub(super) async fn follow(
    client: &Client,
    accepted: &JobAccepted,
    wait: bool,
    out: Output,
) -> anyhow::Result<u8> {
    let id = &accepted.job_id;
    if !wait {
        if out == Output::Json {
            println!("{}", serde_json::to_string_pretty(accepted)?);
        } else {
            let what = if accepted.graph.is_empty() {
                String::new()
            } else {
                format!(" for graph {}", accepted.graph)
            };
            println!(
                "{} job {id} accepted{what}; follow it with `smo-admin jobs show {id}`",
                accepted.kind
            );
        }
        return Ok(0);
    }
    let started = std::time::Instant::now();
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut last = String::new();
    let job = loop {
        let job: JobView = client.get_job(id).await?;
        let state = job.state.clone();
        let line = format!(
            "{} {id}: {state} (attempt {}/{}) {:.1}s",
            job.kind,
            job.attempt,
            job.max_attempts,
            started.elapsed().as_secs_f64()
        );
        if tty {
            eprint!("\r{line}\x1b[K");
        } else if state != last {
            eprintln!("{line}");
        }
        let _ = std::io::stderr().flush();
        last = state.clone();
        if state.parse::<JobState>().is_ok_and(JobState::is_final) {
            if tty {
                eprintln!();
            }
            break job;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    if out == Output::Json {
        println!("{}", serde_json::to_string_pretty(&job)?);
    }
    match job.state.as_str() {
        "succeeded" => {
            if out != Output::Json {
                println!(
                    "{} {id} succeeded in {:.1}s",
                    job.kind,
                    started.elapsed().as_secs_f64()
                );
            }
            Ok(0)
        }
        state => {
            eprintln!("error: {} {id} {state}: {}", job.kind, opt(&job.last_error));
            Ok(1)
        }
    }
}

fn print_dry_run(answer: &DryRun, out: Output) -> anyhow::Result<()> {
    if out == Output::Json {
        println!("{}", serde_json::to_string_pretty(answer)?);
        return Ok(());
    }
    println!(
        "dry run for graph {} — nothing stored, nothing applied",
        answer.graph
    );
    println!("\nplacement:");
    for e in answer.solution["explanations"]
        .as_array()
        .into_iter()
        .flatten()
    {
        println!("  {}", s(&e["summary"]));
    }
    if answer.solution.is_null() {
        for (svc, c) in &answer.placement {
            println!("  {svc} → {c}");
        }
    }
    if !answer.helm_services.is_empty() {
        println!(
            "\nHelm-chart services (installed by the Helm runner): {}",
            answer.helm_services.join(", ")
        );
    }
    println!("\nobjects that would be applied:");
    for o in &answer.objects {
        println!("---");
        print!("{}", serde_norway::to_string(o)?);
    }
    Ok(())
}

fn describe(g: &GraphDetail, jobs: &[JobView], history: &[DecisionView]) {
    println!(
        "graph:       {} (project {}, version {}, revision {})",
        g.name, g.project, g.version, g.revision
    );
    println!("status:      {} (desired: {})", g.status, g.desired);
    if let Some(m) = &g.status_message {
        println!("message:     {m}");
    }
    if let Some(d) = &g.description {
        println!("description: {}", d.trim());
    }
    println!("\nservices:");
    let mut t = crate::cli::table(&[
        "service",
        "status",
        "cluster",
        "ready/replicas",
        "cpu",
        "memory",
        "gpu",
        "artifact",
    ]);
    for sv in &g.services {
        let status = if sv.conditional {
            format!("{} (on event)", sv.status)
        } else {
            sv.status.clone()
        };
        t.add_row(vec![
            sv.name.clone(),
            status,
            opt(&sv.cluster),
            format!("{}/{}", sv.ready, sv.replicas),
            format!("{}m", sv.cpu_millis),
            mib(sv.memory_bytes),
            if sv.gpu { "yes".into() } else { "-".into() },
            sv.artifact.clone(),
        ]);
    }
    println!("{t}");
    if !g.dashboards.is_empty() {
        println!("\ndashboards:");
        for (k, v) in &g.dashboards {
            println!("  {k}: {v}");
        }
    }
    println!("\nrecent jobs:");
    for j in jobs {
        let err = match &j.last_error {
            Some(e) => format!(" — {e}"),
            None => String::new(),
        };
        println!(
            "  {} {:<10} {:<9} attempt {}/{}{err}",
            j.id, j.kind, j.state, j.attempt, j.max_attempts
        );
    }
    println!("\ndecisions (newest first):");
    for d in history {
        println!("  {} {:<9} {}", d.at, d.kind, d.message);
        for e in d.outcome["explanations"].as_array().into_iter().flatten() {
            println!("      {}", s(&e["summary"]));
        }
    }
}
