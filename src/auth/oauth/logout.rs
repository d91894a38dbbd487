//! RP-Initiated Logout 1.0: where the browser goes after signing out, decided from the request
//! as the client sent it. A `post_logout_redirect_uri` is followed only when it is registered,
//! exactly, for the client that the `id_token_hint` or `client_id` names; any other is refused
//! with a page, never a redirect.

use super::authorize::Authorization;
use crate::auth::AuthError;
use crate::domain::UserId;

/// A logout request, checked.
#[derive(Debug)]
pub struct Logout {
    /// Where to send the browser afterwards (with `state`), if anywhere.
    pub redirect: Option<String>,
    /// The user a valid `id_token_hint` names: with it, the sign-in session of that user ends
    /// without asking.
    pub hinted: Option<UserId>,
    /// The client the hint or `client_id` names, and its name for the confirmation page.
    pub client_id: Option<String>,
    pub client_name: Option<String>,
}

impl Authorization {
    /// Checks a logout request; `Err` carries the message of the error page.
    pub async fn logout<'a>(
        &self,
        get: impl Fn(&str) -> Option<&'a str>,
    ) -> Result<Result<Logout, String>, AuthError> {
        let hint = match get("id_token_hint") {
            Some(token) => match self.access.id_token_hint(token) {
                Some(hint) => Some(hint),
                None => {
                    return Ok(Err(
                        "The sign-out request carries an ID token that is not one of ours.".into(),
                    ));
                }
            },
            None => None,
        };
        let client_id = match (hint.as_ref().map(|h| h.aud.as_str()), get("client_id")) {
            (Some(aud), Some(named)) if aud != named => {
                return Ok(Err("The sign-out request names two different applications.".into()));
            }
            (Some(aud), _) => Some(aud.to_owned()),
            (None, named) => named.map(str::to_owned),
        };
        let client = match &client_id {
            Some(id) => self.settings_of(id).await?,
            None => None,
        };
        let redirect = match get("post_logout_redirect_uri") {
            None => None,
            Some(uri) => {
                let registered = client
                    .as_ref()
                    .is_some_and(|c| c.post_logout_redirect_uris.iter().any(|r| r == uri));
                if !registered {
                    let why = "The address to return to after signing out is not registered \
                               for the application.";
                    return Ok(Err(why.into()));
                }
                let mut url = uri.to_owned();
                if let Some(state) = get("state") {
                    let query: String = url::form_urlencoded::Serializer::new(String::new())
                        .append_pair("state", state)
                        .finish();
                    url.push(if url.contains('?') { '&' } else { '?' });
                    url.push_str(&query);
                }
                Some(url)
            }
        };
        let hinted = hint.and_then(|h| UserId::parse(&h.sub));
        let client_name = client.map(|c| c.name);
        Ok(Ok(Logout { redirect, hinted, client_id, client_name }))
    }
}
