//! HDAG descriptors.
