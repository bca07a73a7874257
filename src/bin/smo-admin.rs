//! `smo-admin`: operate smo's job queue; everything lives in [`smo::cli::admin`].

#[tokio::main]
async fn main() -> std::process::ExitCode {
    smo::cli::admin::main().await
}
