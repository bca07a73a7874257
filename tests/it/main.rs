//! smo's integration tests: one binary, so the crate (and HiGHS) is linked once.

mod auth;
mod board;
mod cli;
mod conformance;
mod console;
mod crash;
mod crd_validator;
mod failover;
mod fencing;
mod graphs;
mod helm;
mod hostile;
mod kubectl;
mod monitoring;
mod oci;
mod openapi;
mod reconcile;
mod reference;
mod rounds;
mod sdk;
mod self_metrics;
mod shutdown;
mod stack;
mod support;
mod teams;
