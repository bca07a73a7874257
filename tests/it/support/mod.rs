//! The integration tests' harness.

pub mod crd;

use std::path::PathBuf;

/// `../shared` beside the checkout, when present (CI always has it).
pub fn shared_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared"));
    if dir.is_dir() {
        Some(dir)
    } else {
        println!(
            "skipped the shared conformance cases: {} not found",
            dir.display()
        );
        None
    }
}

/// A fixture of this repository.
pub fn fixture(path: &str) -> Vec<u8> {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures")).join(path);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A fresh database with the engine's and smo's migrations.
pub async fn test_db() -> smo_jobs::testing::TestDb {
    smo_jobs::testing::TestDb::with_template(
        &format!("smo_{}", smo_migrations_key()),
        |pool| async move { smo::server::migrate(&pool).await.map_err(|e| e.to_string()) },
    )
    .await
}

fn smo_migrations_key() -> String {
    // The template must change whenever smo's migrations do.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("migrations dir")
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    for f in files {
        for b in std::fs::read(&f).unwrap_or_default() {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// An example graph of `examples/graphs/`.
pub fn example(name: &str) -> Vec<u8> {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/graphs")).join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}
