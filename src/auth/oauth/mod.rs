//! The OAuth 2.1 and OpenID Connect provider: the registry of its clients.

mod clients;
mod registration;

pub use clients::{
    ClientPage, ClientSecret, ClientView, Clients, FileClient, FileSecret, MAX_CLIENTS_PAGE,
};
pub use registration::{
    ClientSettings, ClientType, ClientUpdate, Consent, GrantType, IdTokenAlg, NewClient,
};
