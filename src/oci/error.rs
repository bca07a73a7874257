//! Errors of the OCI client, worded so that the user knows what to fix.

/// Everything that can go wrong packaging, resolving or fetching a descriptor.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// The reference is not `oci://host[:port]/repository[:tag|@digest]` or `http(s)://…`.
    #[error("invalid reference {reference:?}: {reason}")]
    InvalidReference {
        /// What the user gave.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },
    /// [`crate::oci::package`] was given something it cannot package.
    #[error("cannot package the descriptor: {0}")]
    Package(String),
    /// The archive holds no descriptor file.
    #[error("the artifact holds no descriptor (*.yaml|*.yml|*.json)")]
    NoDescriptor,
    /// Several candidate files and not exactly one with a top-level `hdaGraph` key.
    #[error(
        "the artifact holds several descriptor files ({}) and {reason}; keep one descriptor per artifact",
        files.join(", ")
    )]
    AmbiguousDescriptor {
        /// The candidate files.
        files: Vec<String>,
        /// "none has" / "more than one has" a top-level hdaGraph key.
        reason: String,
    },
    /// An archive entry whose name escapes the extraction root (`..`, absolute path).
    #[error("the artifact holds an unsafe path {0:?} (absolute or with ..); refusing it")]
    UnsafePath(String),
    /// The archive is not a gzip'd tar, or is corrupt.
    #[error("the artifact is not a valid gzip'd tar: {0}")]
    BadArchive(String),
    /// Something is bigger than smo accepts (a gzip bomb, a huge blob, a runaway server).
    #[error("{what} is larger than the limit of {limit} bytes")]
    TooLarge {
        /// What (with its URL or name).
        what: String,
        /// The limit in bytes.
        limit: u64,
    },
    /// No answer in time.
    #[error("{url} did not answer within {seconds}s; check the registry is up and reachable")]
    Timeout {
        /// The URL.
        url: String,
        /// The timeout.
        seconds: u64,
    },
    /// No connection, TLS failure, broken transfer.
    #[error("cannot reach {url}: {message}")]
    Unreachable {
        /// The URL.
        url: String,
        /// Why.
        message: String,
    },
    /// 404: the repository, tag, digest or URL does not exist.
    #[error("{what} not found")]
    NotFound {
        /// `registry/repo:tag`, a blob or a URL.
        what: String,
    },
    /// 401/403 even after the token dance.
    #[error("{url}: access denied ({status}); check the registry credentials and their rights")]
    Unauthorized {
        /// The URL.
        url: String,
        /// 401 or 403.
        status: u16,
    },
    /// Any other unexpected HTTP status.
    #[error("{url} answered {status}: {body}")]
    Status {
        /// The URL.
        url: String,
        /// The status.
        status: u16,
        /// The body, shortened.
        body: String,
    },
    /// The bytes do not hash to the digest they were asked for.
    #[error(
        "{what}: digest mismatch (expected {expected}, got {actual}); the registry sent corrupt or tampered content"
    )]
    DigestMismatch {
        /// Which blob or manifest.
        what: String,
        /// The digest asked for.
        expected: String,
        /// The digest of what arrived.
        actual: String,
    },
    /// The manifest is not an OCI/Docker image manifest smo understands.
    #[error("{reference}: {reason}")]
    BadManifest {
        /// The artifact reference.
        reference: String,
        /// What is wrong.
        reason: String,
    },
}
