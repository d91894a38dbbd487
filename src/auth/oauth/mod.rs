//! The OAuth 2.1 and OpenID Connect provider: the registry of its clients, and the endpoints
//! where a client authenticates.

mod clients;
mod error;
mod registration;
mod request;
mod tokens;

pub use clients::{
    ClientPage, ClientSecret, ClientView, Clients, FileClient, FileSecret, MAX_CLIENTS_PAGE,
};
pub use error::OAuthError;
pub use registration::{
    ClientSettings, ClientType, ClientUpdate, Consent, GrantType, IdTokenAlg, NewClient,
};
pub use tokens::{
    AuthenticatedClient, ClientCredentials, ClientEndpoints, Introspection, PushedRequest,
    TokenResponse,
};
