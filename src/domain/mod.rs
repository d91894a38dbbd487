//! Pure types and rules of the product: no I/O, no framework, no backend.
//!
//! Everything here can be checked with plain unit tests; the layers above turn untrusted input into
//! these types once, at the edge, and rely on their invariants afterwards.

mod amr;
pub mod audit;
mod blocklist;
mod causes;
mod clock;
mod context;
mod email;
mod ids;
mod lockout;
mod password;
mod rate;
mod redirect_uri;
mod role;
mod signature_alg;
mod text;

pub use amr::Amr;
pub use causes::with_causes;
pub use clock::{Clock, ManualClock, SystemClock, Timestamp, chrono_duration};
pub use context::RequestContext;
pub use email::{Email, EmailError, is_default_ignorable};
pub use ids::{SessionId, UserId};
pub use lockout::{AttemptGate, FAILURE_MEMORY, LockoutPolicy, PERMANENT_LOCK_MS};
pub use password::{Password, PasswordPolicy, PolicyViolation};
pub use rate::{Rate, client_ip_key};
pub use redirect_uri::{
    MAX_REDIRECT_URI_CHARS, RedirectUriError, check_redirect_uri, redirect_uri_matches,
};
pub use role::Role;
pub use signature_alg::SignatureAlg;
pub use text::{MAX_NAME_CHARS, display_name, escape_controls, has_hidden_characters, present};
