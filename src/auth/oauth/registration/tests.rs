//! The defaults and rules of a registration.

use super::{ClientType, ClientUpdate, Consent, GrantType, IdTokenAlg, NewClient};

fn named(name: &str) -> NewClient {
    NewClient {
        name: name.to_owned(),
        redirect_uris: vec!["https://app.example.com/cb".to_owned()],
        ..NewClient::default()
    }
}

#[test]
fn a_client_takes_the_contract_s_defaults() {
    let settings = named("  Grafana ").into_settings().ok().unwrap_or_else(|| unreachable!());
    assert_eq!(settings.name, "Grafana");
    assert_eq!(settings.client_type, ClientType::Confidential);
    assert_eq!(settings.grant_types, [GrantType::AuthorizationCode, GrantType::RefreshToken]);
    assert_eq!(settings.scopes, ["openid", "profile", "email", "offline_access"]);
    assert!(settings.require_pkce);
    assert_eq!(settings.consent, Consent::Required);
    assert_eq!(settings.id_token_signed_response_alg, IdTokenAlg::Rs256);
}

#[test]
fn the_rules_of_a_registration_hold() {
    let public = |f: fn(&mut NewClient)| {
        let mut new = named("app");
        new.client_type = Some(ClientType::Public);
        f(&mut new);
        new.into_settings()
    };
    assert!(public(|_| {}).is_ok());
    assert!(public(|n| n.require_pkce = Some(false)).is_err(), "PKCE is always on when public");
    assert!(public(|n| n.grant_types = Some(vec![GrantType::ClientCredentials])).is_err());
    assert!(public(|n| n.redirect_uris = vec!["com.example.app:/cb".to_owned()]).is_ok());
    let confidential = |f: fn(&mut NewClient)| {
        let mut new = named("app");
        f(&mut new);
        new.into_settings()
    };
    assert!(confidential(|n| n.redirect_uris = vec!["com.example.app:/cb".to_owned()]).is_err());
    assert!(confidential(|n| n.redirect_uris.clear()).is_err(), "a code flow needs a redirect");
    let machine = confidential(|n| {
        n.redirect_uris.clear();
        n.grant_types = Some(vec![GrantType::ClientCredentials]);
    });
    assert!(machine.is_ok(), "client credentials need no redirect URI");
    assert!(confidential(|n| n.grant_types = Some(vec![GrantType::RefreshToken])).is_err());
    assert!(confidential(|n| n.grant_types = Some(Vec::new())).is_err());
    assert!(confidential(|n| n.scopes = Some(vec!["open id".to_owned()])).is_err());
    assert!(confidential(|n| n.scopes = Some(vec!["a\"b".to_owned()])).is_err());
    assert!(confidential(|n| n.name = " ".to_owned()).is_err());
    assert!(confidential(|n| n.name = "a\u{7}".to_owned()).is_err());
    assert!(
        confidential(|n| n.backchannel_logout_uri = Some("http://rp.example/bc".to_owned()))
            .is_err()
    );
    let twice = confidential(|n| n.scopes = Some(vec!["openid".to_owned(), "openid".to_owned()]));
    assert_eq!(twice.ok().map(|s| s.scopes), Some(vec!["openid".to_owned()]));
}

#[test]
fn an_update_replaces_what_it_names_and_keeps_the_type() {
    let settings = named("app").into_settings().ok().unwrap_or_else(|| unreachable!());
    let update: ClientUpdate = serde_json::from_str(
        r#"{"name":"renamed","backchannel_logout_uri":"https://rp.example/bc"}"#,
    )
    .unwrap_or_default();
    let changed = update.apply(settings.clone()).ok().unwrap_or_else(|| unreachable!());
    assert_eq!(changed.name, "renamed");
    assert_eq!(changed.backchannel_logout_uri.as_deref(), Some("https://rp.example/bc"));
    assert_eq!(changed.redirect_uris, settings.redirect_uris);
    let cleared: ClientUpdate =
        serde_json::from_str(r#"{"backchannel_logout_uri":null}"#).unwrap_or_default();
    assert_eq!(cleared.apply(changed).ok().and_then(|s| s.backchannel_logout_uri), None);
    assert!(serde_json::from_str::<ClientUpdate>(r#"{"type":"public"}"#).is_err());
}
