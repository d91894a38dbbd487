//! The test suite, one binary: each module drives the real server as its users do (HTTP for the
//! API, the command line, a browser, resource-server libraries), on the storage pair that
//! `PORTCULLIS_TEST_BACKEND` names (see `scripts/test`). One binary links the library once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

mod admin;
mod audit_api;
mod audit_events;
mod browser_cors;
mod browser_oidc;
mod browser_passkey;
mod cli;
mod cli_config;
mod clients;
mod cluster;
mod connection_limits;
mod faults;
mod http_edges;
mod instances;
mod jwt_attacks;
mod layers;
mod lockout;
mod login;
mod logs;
mod mail;
mod mail_tls;
mod metrics;
mod mfa;
mod oauth_clients;
mod oauth_flow;
mod openapi;
mod outage;
mod passkeys;
mod posture;
mod profile;
mod proxies;
mod rate_limits;
mod redis_tls;
mod refresh;
mod refresh_cookie;
mod registration;
mod resource_servers;
mod secrets_at_rest;
mod serve;
mod sessions;
mod startup;
mod store_conformance;
mod tls;
