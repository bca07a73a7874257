//! The reference syntax: `oci://host[:port]/repository[:tag|@sha256:…]` and plain URLs. Pure.

use std::fmt;

use super::OciError;

/// An artifact in an OCI registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciRef {
    /// `host` or `host:port`, as used in the registry's URL.
    pub registry: String,
    /// `a/b/name`: lowercase path components.
    pub repository: String,
    /// A tag (`latest` when none is given) or a digest (`sha256:<64 hex>`).
    pub reference: String,
}

impl OciRef {
    /// True when [`Self::reference`] is a digest rather than a tag.
    pub fn is_digest(&self) -> bool {
        self.reference.contains(':')
    }
}

impl fmt::Display for OciRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sep = if self.is_digest() { '@' } else { ':' };
        write!(
            f,
            "oci://{}/{}{sep}{}",
            self.registry, self.repository, self.reference
        )
    }
}

/// Where a descriptor comes from when deployed by reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `oci://…`
    Oci(OciRef),
    /// `http://…` or `https://…`: a `.tar.gz` artifact or the descriptor itself.
    Url(String),
}

/// Parses `oci://…`, `http://…` or `https://…`.
pub fn parse_source(s: &str) -> Result<Source, OciError> {
    let t = s.trim();
    if t.starts_with("oci://") {
        return parse_ref(t).map(Source::Oci);
    }
    if let Some(rest) = t
        .strip_prefix("https://")
        .or_else(|| t.strip_prefix("http://"))
    {
        if rest.is_empty() || rest.starts_with('/') {
            return Err(invalid(s, "the URL has no host"));
        }
        return Ok(Source::Url(t.to_string()));
    }
    Err(invalid(
        s,
        "expected oci://host[:port]/repository[:tag] or an http(s):// URL",
    ))
}

fn invalid(reference: &str, reason: impl Into<String>) -> OciError {
    OciError::InvalidReference {
        reference: reference.to_string(),
        reason: reason.into(),
    }
}

/// One repository path component per the distribution spec: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    let (Some(&first), Some(&last)) = (b.first(), b.last()) else {
        return false;
    };
    if !alnum(first) || !alnum(last) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let sep_start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[sep_start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-')) {
            return false;
        }
    }
    true
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&x| x.is_ascii_alphanumeric() || matches!(x, b'_' | b'.' | b'-'))
}

fn valid_host(h: &str) -> Result<(), String> {
    let (name, port) = match h.rsplit_once(':') {
        Some((n, p)) if !h.starts_with('[') || n.ends_with(']') => (n, Some(p)),
        _ => (h, None),
    };
    if name.is_empty() {
        return Err("the registry host is empty".into());
    }
    if let Some(p) = port
        && p.parse::<u16>().map_or(true, |p| p == 0)
    {
        return Err(format!(
            "the registry port {p:?} is not a number from 1 to 65535"
        ));
    }
    let ok = name
        .bytes()
        .all(|x| x.is_ascii_alphanumeric() || matches!(x, b'.' | b'-' | b'[' | b']' | b':'));
    if !ok {
        return Err(format!("the registry host {name:?} has invalid characters"));
    }
    Ok(())
}

/// Parses `oci://host[:port]/a/b:tag`, `oci://host/a/b@sha256:<hex>` or `oci://host/a/b` (tag
/// `latest`). Credentials never go in the reference (it is stored and logged): pass them to
/// [`crate::oci::Registry`].
pub fn parse_ref(s: &str) -> Result<OciRef, OciError> {
    let t = s.trim();
    let Some(rest) = t.strip_prefix("oci://") else {
        return Err(invalid(
            s,
            "expected oci://host[:port]/repository[:tag|@sha256:digest]",
        ));
    };
    let Some((host, path)) = rest.split_once('/') else {
        return Err(invalid(
            s,
            "no repository: expected oci://host[:port]/repository[:tag]",
        ));
    };
    if host.contains('@') {
        return Err(invalid(
            s,
            "credentials do not belong in the reference; configure them for the registry instead",
        ));
    }
    valid_host(host).map_err(|r| invalid(s, r))?;
    let (name, reference) = if let Some((name, digest)) = path.split_once('@') {
        let Some(hex) = digest.strip_prefix("sha256:") else {
            return Err(invalid(
                s,
                format!(
                    "digest {digest:?} is not sha256:<64 hex digits> (the only algorithm supported)"
                ),
            ));
        };
        if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(invalid(
                s,
                format!("digest {digest:?} is not sha256:<64 lowercase hex digits>"),
            ));
        }
        // `name:tag@digest`: the digest pins the content, the tag is informational.
        let name = match name.rsplit_once(':') {
            Some((n, tag)) if !tag.contains('/') => n,
            _ => name,
        };
        (name, digest.to_string())
    } else {
        match path.rsplit_once(':') {
            Some((n, tag)) if !tag.contains('/') => {
                if !valid_tag(tag) {
                    return Err(invalid(
                        s,
                        format!(
                            "tag {tag:?} must be 1-128 of [A-Za-z0-9_.-], not starting with . or -"
                        ),
                    ));
                }
                (n, tag.to_string())
            }
            _ => (path, "latest".to_string()),
        }
    };
    if name.is_empty() {
        return Err(invalid(s, "the repository is empty"));
    }
    if let Some(c) = name.split('/').find(|c| !valid_component(c)) {
        let why = if c.bytes().any(|b| b.is_ascii_uppercase()) {
            "repository names must be lowercase".to_string()
        } else {
            format!(
                "repository component {c:?} must be lowercase letters and digits, separated by ., _, __ or -"
            )
        };
        return Err(invalid(s, why));
    }
    Ok(OciRef {
        registry: host.to_string(),
        repository: name.to_string(),
        reference,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(reg: &str, repo: &str, reference: &str) -> OciRef {
        OciRef {
            registry: reg.into(),
            repository: repo.into(),
            reference: reference.into(),
        }
    }

    #[test]
    fn parses_tags_ports_digests_and_defaults() {
        assert_eq!(
            parse_ref("oci://registry.example.com/hdag/shop:2.1.0-rc.1").expect("tag"),
            r("registry.example.com", "hdag/shop", "2.1.0-rc.1")
        );
        assert_eq!(
            parse_ref("oci://localhost:5000/a/b/c").expect("latest"),
            r("localhost:5000", "a/b/c", "latest")
        );
        let d = format!("sha256:{}", "ab".repeat(32));
        let got = parse_ref(&format!("oci://h:443/x@{d}")).expect("digest");
        assert_eq!(got, r("h:443", "x", &d));
        assert!(got.is_digest());
        assert_eq!(got.to_string(), format!("oci://h:443/x@{d}"));
        assert_eq!(
            parse_ref(&format!("oci://h/x:v1@{d}")).expect("tag+digest"),
            r("h", "x", &d)
        );
        assert_eq!(
            parse_ref("oci://h/my-org/web_app.v2:v1")
                .expect("separators")
                .to_string(),
            "oci://h/my-org/web_app.v2:v1"
        );
    }

    #[test]
    fn errors_name_the_problem() {
        let cases = [
            ("docker.io/a/b", "expected oci://"),
            ("oci://host", "no repository"),
            ("oci:///a/b", "host is empty"),
            ("oci://h:99999/a", "port"),
            ("oci://user:pw@h/a", "credentials"),
            ("oci://h/Shop:v1", "lowercase"),
            ("oci://h/a//b", "component \"\""),
            ("oci://h/a:", "tag \"\""),
            ("oci://h/a:-x", "tag \"-x\""),
            ("oci://h/a@md5:00", "sha256"),
            ("oci://h/a@sha256:00", "64"),
        ];
        for (input, needle) in cases {
            let msg = parse_ref(input).expect_err(input).to_string();
            assert!(msg.contains(needle), "{input}: {msg}");
            assert!(msg.contains(input), "{input}: {msg}");
        }
    }

    #[test]
    fn sources() {
        assert_eq!(
            parse_source(" https://x/y.tgz ").expect("url"),
            Source::Url("https://x/y.tgz".into())
        );
        assert!(matches!(
            parse_source("oci://h/a").expect("oci"),
            Source::Oci(_)
        ));
        assert!(parse_source("ftp://x").is_err());
        assert!(parse_source("http:///x").is_err());
    }
}
