//! Builds the application from `Settings`: the one place that chooses backends.
//!
//! - `backends`: which store serves what, opened (and migrated) as the settings say.
//! - `service`: the use cases on those backends, with `Settings` mapped onto what `auth` takes.
//! - `lifecycle`: the server built, served, and stopped.
//! - `jobs`: the background tasks of a running server, one per file.
//! - `errors`: why a start failed, naming the variable to change.

mod backends;
mod clients_file;
mod errors;
mod files;
mod jobs;
mod lifecycle;
mod service;
mod summary;

pub use backends::{Backends, open_backends};
pub use errors::StartupError;
pub use lifecycle::Application;
pub use service::{build_administration, build_auth, build_clients, new_metrics};
pub use summary::StartSummary;
