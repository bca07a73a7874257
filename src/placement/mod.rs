//! Placement optimiser.
