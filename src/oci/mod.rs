//! Packaged HDAG descriptors over the OCI distribution API, natively (no `hdarctl`, no `helm`).
//!
//! Users deploy a graph by reference, `oci://host[:port]/repo/name:tag` (or `@sha256:…`), or by a
//! plain `http(s)://…` URL to a `.tar.gz`; they publish one with [`package`] and
//! [`Registry::push_descriptor`]. An artifact is an OCI image manifest whose single layer is a
//! gzip'd tar holding the descriptor (`application/vnd.cncf.hdag.descriptor.v1.tar+gzip`) and whose
//! config is the empty JSON object (`application/vnd.cncf.hdag.config.v1+json`).
//!
//! Everything a registry or URL sends is untrusted: sizes are checked before downloading, bytes are
//! capped while streaming, blob digests are verified, archives are bounded against gzip bombs and
//! path traversal, and every request has a timeout.
//!
//! - [`package`], [`unpack`]: pure, the archive format;
//! - [`parse_ref`], [`parse_source`]: pure, the reference syntax;
//! - [`Registry`]: the HTTP client (pull, push, plain URLs, bearer-token auth).

mod client;
mod error;
mod package;
mod reference;
#[cfg(test)]
mod registry_tests;

pub use client::{CONFIG_MEDIA_TYPE, DEFAULT_MAX_BLOB_BYTES, LAYER_MEDIA_TYPE, Registry};
pub use error::OciError;
pub use package::{UnpackLimits, package, unpack};
pub use reference::{OciRef, Source, parse_ref, parse_source};
