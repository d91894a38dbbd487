//! A browser app on `oidc-client-ts` signs a user in through portcullis in Debian's Chromium
//! (`tests/browser/oidc-spa.mjs` drives it like a person: it types into the login page and
//! allows on the consent page). The app does the rest itself: PKCE, the redirect, the state,
//! the code exchange and userinfo by CORS, and its checks of the ID token's claims.

use crate::common;
use crate::common::browser;

use axum::Router;
use axum::http::header;
use axum::routing::get;
use serde_json::{Value, json};

/// The app's files: its page (at `/` and `/callback`), its script, the library, its settings.
fn app_files(config: Value) -> Router {
    let dir = browser::browser_dir();
    let read = |path: &str| std::fs::read_to_string(dir.join(path)).unwrap();
    let html = read("spa/index.html");
    let script = read("spa/app.js");
    let library = read("node_modules/oidc-client-ts/dist/browser/oidc-client-ts.min.js");
    let typed = |kind: &'static str, body: String| {
        move || async move { ([(header::CONTENT_TYPE, kind)], body) }
    };
    Router::new()
        .route("/", get(typed("text/html", html.clone())))
        .route("/callback", get(typed("text/html", html)))
        .route("/app.js", get(typed("text/javascript", script)))
        .route("/oidc-client-ts.min.js", get(typed("text/javascript", library)))
        .route("/config.json", get(typed("application/json", config.to_string())))
        .route("/favicon.ico", get(|| async { "" }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_app_on_oidc_client_ts_signs_a_user_in_in_chromium() {
    if !browser::browser_ready("the oidc-client-ts test")
        || !browser::browser_dir().join("node_modules/oidc-client-ts").exists()
    {
        assert!(std::env::var_os("CI").is_none(), "run npm ci --prefix tests/browser");
        return;
    }
    let app_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app_origin = format!("http://localhost:{}", app_listener.local_addr().unwrap().port());
    let address = common::free_port();
    let issuer = format!("http://localhost:{}", address.port());
    let server = common::spawn_with(&[
        ("PORTCULLIS_BIND", &address.to_string()),
        ("PORTCULLIS_ISSUER", &issuer),
        ("PORTCULLIS_CORS_ORIGINS", &app_origin),
    ])
    .await;
    common::create_admin(&server, "root@example.com").await;
    let admin = server.logged_in("root@example.com", common::PASSWORD).await;
    let body = json!({
        "name": "Dashboard", "type": "public",
        "redirect_uris": [format!("{app_origin}/callback")],
    });
    let created = server
        .request(
            reqwest::Method::POST,
            "/v1/admin/clients",
            Some(common::str_of(&admin, "access_token")),
            Some(body),
        )
        .await;
    let client: Value = created.json().await.unwrap();
    let client_id = common::str_of(&client, "client_id");
    server.signed_in("ada@example.com").await;
    let _app = browser::serve(
        app_listener,
        app_files(json!({ "issuer": issuer, "client_id": client_id })),
    );

    let app_url = format!("{app_origin}/");
    let args = [app_url.as_str(), issuer.as_str(), "ada@example.com", common::PASSWORD];
    let (report, success) = browser::run_driver("oidc-spa.mjs", &args).await;
    assert!(success, "the app did not sign in: {report:#}");
    assert_eq!(report["pages"], json!(["/login", "/consent", "/callback"]), "{report:#}");
    let done = &report["done"];
    assert_eq!(done["email"], "ada@example.com", "{report:#}");
    assert_eq!(done["iss"], issuer.as_str());
    assert_eq!(done["scope"], "openid profile email");
    assert_eq!(done["access_token"], true);
}
