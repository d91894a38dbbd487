//! portcullis: a self-hosted authentication service.
//!
//! The layers, each importing only from those below it:
//! - `cli`: the subcommands of the contract.
//! - `config`: `Settings`, loaded once from a file and the environment, validated, passed in.
//! - `startup`: builds the application from `Settings`; the one place that chooses backends.
//! - `http`: axum router, extractors, middleware and handlers.
//! - `error`: `ApiError`, the one place that picks status codes and public messages.
//! - `metrics`: the Prometheus registry, passed to the layers that count.
//! - `auth`: the use cases (register, login, refresh, logout, sessions, password change).
//! - `audit`: typed security events and the trail.
//! - `store`: storage traits and their backends.
//! - `domain`: pure types and rules: emails, passwords and the policy, ids, roles.

pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod error;
pub mod http;
pub mod mail;
pub mod metrics;
pub mod startup;
pub mod store;
