//! `smo`: the command line and the server roles; everything lives in [`smo::cli::smo`].

#[tokio::main]
async fn main() -> std::process::ExitCode {
    smo::cli::smo::main().await
}
