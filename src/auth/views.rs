//! What the use cases hand out about an account: never its password hash. (`ToSchema` only
//! describes the type for the OpenAPI document.)

use serde::Serialize;

use crate::domain::{Role, Timestamp};
use crate::store::UserRecord;

/// The public view of a user, as the contract's user object shows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[schema(as = User)]
pub struct UserView {
    #[schema(format = Uuid)]
    pub id: String,
    pub email: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    pub roles: Vec<Role>,
    pub email_verified: bool,
    /// The second factors in use: `totp`, `passkey`.
    pub mfa: Vec<&'static str>,
    /// The name the user gave, or `null`.
    pub name: Option<String>,
}

impl From<&UserRecord> for UserView {
    fn from(user: &UserRecord) -> Self {
        Self {
            id: user.id.to_string(),
            email: user.email.as_str().to_owned(),
            created_at: user.created_at,
            roles: user.roles.clone(),
            email_verified: user.email_verified,
            mfa: [("totp", user.factors.totp), ("passkey", user.factors.passkeys)]
                .into_iter()
                .filter_map(|(name, on)| on.then_some(name))
                .collect(),
            name: user.name.clone(),
        }
    }
}
