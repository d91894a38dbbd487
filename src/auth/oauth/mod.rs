//! The OAuth 2.1 and OpenID Connect provider: the registry of its clients, and the endpoints
//! where a client authenticates.

mod authorize;
mod browser;
mod clients;
mod code;
mod error;
mod grants;
mod interactions;
mod logout;
mod refresh;
mod registration;
mod request;
mod revoke;
mod tokens;

pub use authorize::{Authorization, AuthorizeSettings, ClientAnswer, Next, Pending};
pub use browser::{BrowserSessions, SignedIn};
pub use clients::{
    ClientPage, ClientSecret, ClientView, Clients, FileClient, FileSecret, MAX_CLIENTS_PAGE,
};
pub use code::{UserClaims, UserInfo, UserInfoError};
pub use error::OAuthError;
pub use grants::{GrantView, Grants};
pub use interactions::{Decided, InteractionClient, InteractionView, Redirect};
pub use logout::Logout;
pub use registration::{
    ClientSettings, ClientType, ClientUpdate, Consent, GrantType, IdTokenAlg, NewClient,
};
pub use request::ResponseMode;
pub use tokens::{
    AuthenticatedClient, ClientCredentials, ClientEndpoints, GrantSettings, Introspection,
    PushedRequest, TokenResponse,
};
