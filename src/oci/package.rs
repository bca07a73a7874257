//! The artifact format: a gzip'd tar holding one descriptor file. Pure, no I/O.

use std::io::Read;
use std::path::Component;

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

use super::OciError;

/// Bounds applied while unpacking an untrusted archive.
#[derive(Debug, Clone, Copy)]
pub struct UnpackLimits {
    /// Total uncompressed tar bytes accepted: a few kilobytes of gzip can expand to gigabytes.
    pub max_total_bytes: u64,
    /// Entries accepted: a tar of millions of empty files is another way to burn CPU.
    pub max_entries: usize,
}

impl Default for UnpackLimits {
    /// 10 MiB and 1000 entries: a descriptor is a few kilobytes.
    fn default() -> Self {
        Self {
            max_total_bytes: 10 * 1024 * 1024,
            max_entries: 1000,
        }
    }
}

fn is_descriptor_name(name: &str) -> bool {
    let base = name.rsplit('/').next().unwrap_or(name);
    // AppleDouble files (`._graph.yaml`) that macOS tar adds are metadata, not descriptors.
    if base.starts_with("._") {
        return false;
    }
    let lower = base.to_ascii_lowercase();
    lower.ends_with(".yaml") || lower.ends_with(".yml") || lower.ends_with(".json")
}

/// Packages a descriptor as a gzip'd tar holding the single file `file_name`.
///
/// The output is deterministic (mtime 0, mode 0644, uid/gid 0) so that packaging the same
/// descriptor twice gives the same blob digest and a push is a no-op.
pub fn package(descriptor_yaml: &[u8], file_name: &str) -> Result<Vec<u8>, OciError> {
    if file_name.is_empty()
        || file_name.contains(['/', '\\', '\0'])
        || file_name == "."
        || file_name == ".."
    {
        return Err(OciError::Package(format!(
            "file name {file_name:?} must be a plain file name (no directories)"
        )));
    }
    if !is_descriptor_name(file_name) {
        return Err(OciError::Package(format!(
            "file name {file_name:?} must end in .yaml, .yml or .json so that it can be found again"
        )));
    }
    if descriptor_yaml.is_empty() {
        return Err(OciError::Package("the descriptor is empty".into()));
    }
    let mut header = tar::Header::new_ustar();
    header
        .set_path(file_name)
        .map_err(|e| OciError::Package(format!("file name {file_name:?}: {e}")))?;
    header.set_size(descriptor_yaml.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::best()));
    builder
        .append(&header, descriptor_yaml)
        .map_err(|e| OciError::Package(e.to_string()))?;
    builder
        .into_inner()
        .and_then(|gz| gz.finish())
        .map_err(|e| OciError::Package(e.to_string()))
}

/// Rejects absolute names and `..` so that nobody extracting the same archive to disk can be
/// tricked into writing outside its directory, and so that names shown to the user are honest.
fn safe_name(raw: &[u8]) -> Result<String, OciError> {
    let name = String::from_utf8_lossy(raw).into_owned();
    if raw.contains(&0) || name.starts_with('/') || name.starts_with('\\') || name.contains(":\\") {
        return Err(OciError::UnsafePath(name));
    }
    for c in std::path::Path::new(&name).components() {
        match c {
            Component::Normal(_) | Component::CurDir => {}
            _ => return Err(OciError::UnsafePath(name)),
        }
    }
    if name.split(['/', '\\']).any(|p| p == "..") {
        return Err(OciError::UnsafePath(name));
    }
    Ok(name)
}

/// True when the document's top level is a mapping with an `hdaGraph` key.
fn has_hdag_key(bytes: &[u8]) -> bool {
    matches!(
        serde_norway::from_slice::<serde_norway::Value>(bytes),
        Ok(serde_norway::Value::Mapping(m)) if m.contains_key("hdaGraph")
    )
}

/// Returns the descriptor inside a packaged artifact (gzip'd tar).
///
/// One `*.yaml|*.yml|*.json` file is the descriptor; among several, the one whose top-level key is
/// `hdaGraph`. Non-regular entries (directories, links) are skipped, but every name is checked
/// for path traversal, and the total uncompressed size and entry count are bounded.
pub fn unpack(tgz: &[u8], limits: UnpackLimits) -> Result<Vec<u8>, OciError> {
    let mut tar_bytes = Vec::new();
    GzDecoder::new(tgz)
        .take(limits.max_total_bytes.saturating_add(1))
        .read_to_end(&mut tar_bytes)
        .map_err(|e| OciError::BadArchive(e.to_string()))?;
    if tar_bytes.len() as u64 > limits.max_total_bytes {
        return Err(OciError::TooLarge {
            what: "the unpacked artifact".into(),
            limit: limits.max_total_bytes,
        });
    }
    let mut archive = tar::Archive::new(tar_bytes.as_slice());
    let entries = archive
        .entries()
        .map_err(|e| OciError::BadArchive(e.to_string()))?;
    let mut candidates: Vec<(String, Vec<u8>)> = Vec::new();
    for (i, entry) in entries.enumerate() {
        if i >= limits.max_entries {
            return Err(OciError::BadArchive(format!(
                "more than {} entries",
                limits.max_entries
            )));
        }
        let mut entry = entry.map_err(|e| OciError::BadArchive(e.to_string()))?;
        let name = safe_name(&entry.path_bytes())?;
        if let Some(link) = entry.link_name_bytes() {
            safe_name(&link)?;
        }
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind == tar::EntryType::Continuous) || !is_descriptor_name(&name) {
            continue;
        }
        let mut data = Vec::new();
        entry
            .read_to_end(&mut data)
            .map_err(|e| OciError::BadArchive(format!("{name}: {e}")))?;
        candidates.push((name, data));
    }
    match candidates.len() {
        0 => Err(OciError::NoDescriptor),
        1 => Ok(candidates.swap_remove(0).1),
        _ => {
            let files: Vec<String> = candidates.iter().map(|(n, _)| n.clone()).collect();
            let mut graphs: Vec<usize> = (0..candidates.len())
                .filter(|&i| has_hdag_key(&candidates[i].1))
                .collect();
            match graphs.len() {
                1 => Ok(candidates.swap_remove(graphs.remove(0)).1),
                0 => Err(OciError::AmbiguousDescriptor {
                    files,
                    reason: "none has a top-level hdaGraph key".into(),
                }),
                _ => Err(OciError::AmbiguousDescriptor {
                    files,
                    reason: "more than one has a top-level hdaGraph key".into(),
                }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    const GRAPH: &[u8] = include_bytes!("../../tests/fixtures/oci/graph.yaml");
    const VALUES: &[u8] = include_bytes!("../../tests/fixtures/oci/values.yaml");

    /// Builds a tgz with raw header names (the tar crate's `set_path` refuses `..`, as it should,
    /// so hostile names are written into the header bytes directly).
    fn tgz(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            let raw = &mut h.as_old_mut().name;
            raw[..name.len()].copy_from_slice(name.as_bytes());
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            h.set_cksum();
            b.append(&h, *data).expect("append");
        }
        b.into_inner().expect("tar").finish().expect("gzip")
    }

    #[test]
    fn round_trip_is_exact_and_deterministic() {
        let a = package(GRAPH, "graph.yaml").expect("package");
        assert_eq!(&a[..2], &[0x1f, 0x8b]);
        assert_eq!(unpack(&a, UnpackLimits::default()).expect("unpack"), GRAPH);
        assert_eq!(a, package(GRAPH, "graph.yaml").expect("package"));
    }

    #[test]
    fn package_rejects_bad_names_and_empty_descriptors() {
        for bad in ["", "a/graph.yaml", "../graph.yaml", "graph.txt", ".."] {
            assert!(
                matches!(package(GRAPH, bad), Err(OciError::Package(_))),
                "{bad}"
            );
        }
        assert!(matches!(package(b"", "g.yaml"), Err(OciError::Package(_))));
    }

    #[test]
    fn no_descriptor_is_an_error() {
        let a = tgz(&[("README.md", b"hi"), ("chart/._graph.yaml", b"x")]);
        let e = unpack(&a, UnpackLimits::default()).expect_err("no descriptor");
        assert!(matches!(e, OciError::NoDescriptor));
        assert_eq!(
            e.to_string(),
            "the artifact holds no descriptor (*.yaml|*.yml|*.json)"
        );
    }

    #[test]
    fn several_files_pick_the_hdag_one_or_list_them() {
        let a = tgz(&[("values.yaml", VALUES), ("dir/graph.yml", GRAPH)]);
        assert_eq!(unpack(&a, UnpackLimits::default()).expect("unpack"), GRAPH);

        let two = tgz(&[("a.yaml", GRAPH), ("b.json", br#"{"hdaGraph": {}}"#)]);
        let e = unpack(&two, UnpackLimits::default()).expect_err("two graphs");
        let msg = e.to_string();
        assert!(
            msg.contains("a.yaml, b.json") && msg.contains("more than one"),
            "{msg}"
        );

        let none = tgz(&[("a.yaml", VALUES), ("b.yaml", VALUES)]);
        let msg = unpack(&none, UnpackLimits::default())
            .expect_err("none")
            .to_string();
        assert!(
            msg.contains("a.yaml, b.yaml") && msg.contains("none has"),
            "{msg}"
        );
    }

    #[test]
    fn a_json_descriptor_alone_is_taken() {
        let a = tgz(&[("graph.json", br#"{"hdaGraph": {"id": "x"}}"#)]);
        assert_eq!(
            unpack(&a, UnpackLimits::default()).expect("unpack"),
            br#"{"hdaGraph": {"id": "x"}}"#
        );
    }

    #[test]
    fn gzip_bomb_is_bounded() {
        // 64 MiB of zeros compress to ~64 KiB; the limit stops decompression at 10 MiB.
        let mut gz = GzEncoder::new(Vec::new(), Compression::best());
        let zeros = vec![0u8; 1024 * 1024];
        for _ in 0..64 {
            gz.write_all(&zeros).expect("write");
        }
        let bomb = gz.finish().expect("gzip");
        assert!(bomb.len() < 1024 * 1024);
        let e = unpack(&bomb, UnpackLimits::default()).expect_err("bomb");
        assert!(matches!(e, OciError::TooLarge { limit, .. } if limit == 10 * 1024 * 1024));
    }

    #[test]
    fn path_traversal_is_rejected() {
        for name in ["../../etc/evil.yaml", "/etc/graph.yaml", "a/../../b.yaml"] {
            let a = tgz(&[(name, GRAPH)]);
            let e = unpack(&a, UnpackLimits::default()).expect_err(name);
            assert!(
                matches!(&e, OciError::UnsafePath(n) if n == name),
                "{name}: {e}"
            );
        }
    }

    #[test]
    fn garbage_is_a_bad_archive() {
        assert!(matches!(
            unpack(b"not gzip", UnpackLimits::default()),
            Err(OciError::BadArchive(_))
        ));
    }

    #[test]
    fn too_many_entries_are_refused() {
        let files: Vec<(String, Vec<u8>)> =
            (0..5).map(|i| (format!("f{i}.txt"), vec![b'x'])).collect();
        let refs: Vec<(&str, &[u8])> = files
            .iter()
            .map(|(n, d)| (n.as_str(), d.as_slice()))
            .collect();
        let limits = UnpackLimits {
            max_entries: 3,
            ..UnpackLimits::default()
        };
        assert!(matches!(
            unpack(&tgz(&refs), limits),
            Err(OciError::BadArchive(_))
        ));
    }
}
