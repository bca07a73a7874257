//! `cargo run -p smo-sdk-gen`: regenerates `api/sdk/src/generated.rs` from `api/openapi.yaml`.
//!
//! `--check` compares instead of writing and exits 1 when the committed file is stale.

use std::{path::PathBuf, process::ExitCode};

fn main() -> ExitCode {
    let api = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("api/sdk-gen sits in api/")
        .to_path_buf();
    let spec_path = api.join("openapi.yaml");
    let out_path = api.join("sdk/src/generated.rs");
    let check = std::env::args().skip(1).any(|a| a == "--check");
    let spec = match std::fs::read_to_string(&spec_path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {}: {e}", spec_path.display());
            return ExitCode::FAILURE;
        }
    };
    let code = match smo_sdk_gen::generate(&spec) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {}: {e}", spec_path.display());
            return ExitCode::FAILURE;
        }
    };
    if check {
        let current = std::fs::read_to_string(&out_path).unwrap_or_default();
        if current != code {
            eprintln!(
                "error: {} is stale; regenerate it with: cargo run -p smo-sdk-gen",
                out_path.display()
            );
            return ExitCode::FAILURE;
        }
        println!("{} is fresh", out_path.display());
        return ExitCode::SUCCESS;
    }
    if let Err(e) = std::fs::write(&out_path, code) {
        eprintln!("error: {}: {e}", out_path.display());
        return ExitCode::FAILURE;
    }
    println!("wrote {}", out_path.display());
    ExitCode::SUCCESS
}
