//! CORS as a real browser enforces it: headless Chromium loads a page from an allowed and from a
//! disallowed loopback origin, and each page's script calls the API with `fetch` and writes what
//! it saw into the DOM, which `--dump-dom` prints.
//!
//! From the allowed origin register, login and `/me` work, and the headers a client needs are
//! readable from JavaScript (`Access-Control-Expose-Headers`): `Retry-After`, `RateLimit-*` and
//! `X-Request-Id` on a refusal, `WWW-Authenticate` on a 401. From the other origin every call is
//! blocked by the browser. Without Chromium the test is skipped, except under CI, where it fails.

use crate::common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use axum::Router;
use axum::response::Html;
use axum::routing::get;
use serde_json::Value;

/// Start markers around the script's JSON in the dumped DOM.
const START: &str = "RESULT-START";
const END: &str = "RESULT-END";

/// Where Chromium is: `PORTCULLIS_CHROMIUM`, else Debian's package.
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PORTCULLIS_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    path.exists().then_some(path)
}

/// The page's script: register, login and `/me` with the token, then a 401 and logins until the
/// per-IP budget refuses one, recording each status and the headers it could read.
fn page(api: SocketAddr, email: &str) -> String {
    let script = r#"
const api = "http://API";
const out = {};
const readable = ["retry-after", "ratelimit-limit", "ratelimit-remaining", "ratelimit-reset",
                  "x-request-id", "www-authenticate"];
function seen(response) {
  const headers = {};
  for (const name of readable) {
    const value = response.headers.get(name);
    if (value !== null) headers[name] = value;
  }
  return { status: response.status, headers };
}
async function call(name, path, init) {
  try {
    const response = await fetch(api + path, init);
    out[name] = seen(response);
    return await response.json().catch(() => null);
  } catch (error) {
    out[name] = { blocked: String(error) };
    return null;
  }
}
function post(body, extra) {
  return { method: "POST", body: JSON.stringify(body),
           headers: Object.assign({ "content-type": "application/json" }, extra || {}) };
}
async function run() {
  const credentials = { email: "EMAIL", password: "Correct-Horse-42" };
  await call("register", "/v1/auth/register",
             post(credentials, { "x-requested-with": "fetch", "x-request-id": "browser-register" }));
  const login = await call("login", "/v1/auth/login", post(credentials));
  const token = (login && login.access_token) || "none";
  await call("me", "/v1/auth/me", { headers: { authorization: "Bearer " + token } });
  await call("unauthorized", "/v1/auth/me", {});
  for (let i = 0; i < 6; i++) {
    await call("limited", "/v1/auth/login", post({ email: credentials.email, password: "wrong" }));
    if (out.limited.status === 429 || out.limited.blocked) break;
  }
}
run().finally(() => {
  document.getElementById("result").textContent = "START" + JSON.stringify(out) + "END";
});
"#
    .replace("API", &api.to_string())
    .replace("EMAIL", email)
    .replace("START", START)
    .replace("END", END);
    format!(
        "<!doctype html><html><head><meta charset=utf-8><title>cors</title></head>\
         <body><pre id=result>pending</pre><script>{script}</script></body></html>"
    )
}

/// Serves `html` at `/` on a fresh loopback port: the page's origin.
async fn serve_page(html: String) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = Router::new()
        .route("/", get(move || async move { Html(html) }))
        .route("/favicon.ico", get(|| async { "" }));
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (address, task)
}

/// Loads `url` in headless Chromium and returns what the page's script recorded.
async fn run_in_chromium(chromium: &PathBuf, url: &str) -> Value {
    let profile = tempfile::tempdir().unwrap();
    let mut command = tokio::process::Command::new(chromium);
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            // Virtual time does not advance while fetches are pending, so this waits for them.
            "--virtual-time-budget=30000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(90), command.output())
        .await
        .expect("chromium did not finish within 90 s")
        .unwrap();
    let dom = String::from_utf8_lossy(&output.stdout);
    let json = dom
        .split_once(START)
        .and_then(|(_, rest)| rest.split_once(END))
        .map(|(json, _)| json.replace("&quot;", "\"").replace("&amp;", "&"))
        .unwrap_or_else(|| {
            panic!(
                "no result in the page ({}):\n{dom}\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            )
        });
    serde_json::from_str(&json).unwrap()
}

fn status(result: &Value, call: &str) -> Option<u64> {
    result[call]["status"].as_u64()
}

fn header<'a>(result: &'a Value, call: &str, name: &str) -> Option<&'a str> {
    result[call]["headers"][name].as_str()
}

#[tokio::test]
async fn fetch_works_from_an_allowed_origin_only_and_exposes_the_contract_headers() {
    let Some(chromium) = chromium() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium is missing under CI: install Debian's chromium package"
        );
        eprintln!("SKIPPED: no chromium at /usr/bin/chromium (or PORTCULLIS_CHROMIUM)");
        return;
    };
    // The allowed page's origin must be known before the API starts, so bind its port first.
    let allowed_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let allowed_origin = format!("http://{}", allowed_listener.local_addr().unwrap());
    drop(allowed_listener);
    let app = common::spawn_with(&[
        ("PORTCULLIS_CORS_ORIGINS", allowed_origin.as_str()),
        ("PORTCULLIS_RATE_LIMIT_IP", "5/min"),
    ])
    .await;

    let allowed_html = page(app.address, "allowed@example.com");
    let allowed_port = allowed_origin.rsplit_once(':').map(|(_, p)| p.to_owned()).unwrap();
    let listener =
        tokio::net::TcpListener::bind(format!("127.0.0.1:{allowed_port}")).await.unwrap();
    let allowed_app = Router::new().route("/", get(move || async move { Html(allowed_html) }));
    let _allowed = tokio::spawn(async move {
        let _ = axum::serve(listener, allowed_app).await;
    });
    let (denied, _denied) = serve_page(page(app.address, "denied@example.com")).await;

    let result = run_in_chromium(&chromium, &format!("{allowed_origin}/")).await;
    assert_eq!(status(&result, "register"), Some(201), "{result}");
    assert_eq!(status(&result, "login"), Some(200), "{result}");
    assert_eq!(status(&result, "me"), Some(200), "{result}");
    assert!(header(&result, "me", "x-request-id").is_some_and(|id| !id.is_empty()), "{result}");
    assert_eq!(status(&result, "unauthorized"), Some(401), "{result}");
    assert!(header(&result, "unauthorized", "www-authenticate").is_some(), "{result}");
    assert_eq!(status(&result, "limited"), Some(429), "{result}");
    for name in ["retry-after", "ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"] {
        let value = header(&result, "limited", name);
        assert!(value.is_some_and(|v| v.parse::<u64>().is_ok()), "{name} unreadable: {result}");
    }
    assert!(header(&result, "limited", "x-request-id").is_some(), "{result}");

    let result = run_in_chromium(&chromium, &format!("http://{denied}/")).await;
    for call in ["register", "login", "me", "unauthorized"] {
        assert!(result[call]["blocked"].is_string(), "{call} was not blocked: {result}");
    }
}
