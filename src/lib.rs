//! portcullis: a self-hosted authentication service.
//!
//! The layers, each importing only from those below it (a test of the imports holds this):
//! - `cli`: the subcommands of the contract; each builds only what it touches.
//! - `startup`: builds the application from `Settings`; the one place that chooses backends;
//!   the background jobs and the lifecycle of a running server.
//! - `http`: axum router, extractors, middleware and handlers.
//! - `error`: `ApiError`, the one place that picks status codes and public messages.
//! - `auth`: the use cases (register, login, refresh, sessions, the second factors, the mail
//!   flows, administration).
//! - `audit`, `mail`: the trail of security events; the outbox and its sender.
//! - `crypto`: password hashing, access-token keys and their rotation, random tokens, sealing
//!   under the master key and the keys derived from it.
//! - `store`, `config`, `metrics`: storage traits and their backends; `Settings`, loaded once
//!   from a file and the environment, validated, passed in; the Prometheus registry.
//! - `domain`: pure types and rules: emails, passwords and the policy, ids, roles, the clock.

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
