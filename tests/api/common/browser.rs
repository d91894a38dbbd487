//! What the browser tests share: Debian's Chromium, Node, the drivers in `tests/browser`, and
//! a skip (outside CI only) when one of them is missing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

/// How long a Node driver (browser start, pages, ceremonies) may take.
pub const DRIVER_TIMEOUT: Duration = Duration::from_secs(60);

/// Where Chromium is: `PORTCULLIS_CHROMIUM`, else Debian's package.
pub fn chromium() -> PathBuf {
    std::env::var_os("PORTCULLIS_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// The Node executable: `PORTCULLIS_NODE`, else `node` on the path.
pub fn node() -> PathBuf {
    std::env::var_os("PORTCULLIS_NODE").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("node"))
}

pub fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("browser")
}

/// What is missing to run a browser test, if anything.
pub fn missing_tools() -> Vec<String> {
    let mut missing = Vec::new();
    if !chromium().exists() {
        missing.push(format!("chromium at {}", chromium().display()));
    }
    let node_runs = std::process::Command::new(node())
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    if !node_runs {
        missing.push(format!("node ({})", node().display()));
    }
    if !browser_dir().join("node_modules").join("playwright-core").exists() {
        missing.push(
            "tests/browser/node_modules/playwright-core (npm ci --prefix tests/browser)".to_owned(),
        );
    }
    missing
}

/// Whether the browser test `test` can run; outside CI it is skipped (and says so) when a tool
/// is missing, under CI it fails.
pub fn browser_ready(test: &str) -> bool {
    let missing = missing_tools();
    if missing.is_empty() {
        return true;
    }
    assert!(std::env::var_os("CI").is_none(), "{test}: missing under CI: {}", missing.join(", "));
    eprintln!("SKIPPED {test}: missing {}", missing.join(", "));
    false
}

/// Runs the driver `script` of `tests/browser` with `args`; its report (the last JSON line it
/// printed) and whether it exited with success.
pub async fn run_driver(script: &str, args: &[&str]) -> (Value, bool) {
    let mut command = tokio::process::Command::new(node());
    command
        .arg(browser_dir().join(script))
        .args(args)
        .env("PORTCULLIS_CHROMIUM", chromium())
        .current_dir(browser_dir())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(DRIVER_TIMEOUT, command.output())
        .await
        .unwrap_or_else(|_| panic!("the browser driver did not finish within {DRIVER_TIMEOUT:?}"))
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let report: Value =
        stdout.lines().rev().find_map(|line| serde_json::from_str(line).ok()).unwrap_or_else(
            || panic!("no report from the driver ({}):\n{stdout}\n{stderr}", output.status),
        );
    (report, output.status.success())
}

/// Serves `app` on `listener` (and, when it can, on the same port of `[::1]`, since Chromium
/// may try that address first for `localhost`).
pub fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
) -> Vec<tokio::task::JoinHandle<()>> {
    let port = listener.local_addr().unwrap().port();
    let mut tasks = Vec::new();
    if let Ok(v6) = std::net::TcpListener::bind(("::1", port)) {
        v6.set_nonblocking(true).unwrap();
        let v6 = tokio::net::TcpListener::from_std(v6).unwrap();
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let _ = axum::serve(v6, app).await;
        }));
    }
    tasks.push(tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    }));
    tasks
}
