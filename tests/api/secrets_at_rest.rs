//! Secrets at rest: signing keys and server secrets are sealed under a master key kept outside
//! the database, so a copy of the database alone cannot mint tokens; the data directory and its
//! files are private to the service's user.

use crate::common;

use common::{TestResult, spawn_in, spawn_with};
use reqwest::StatusCode;
use sqlx::Row;

const KEY_A: &str = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=";
const KEY_B: &str = "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=";

/// The stored private keys and secret values, as the database holds them.
async fn stored_secrets(app: &common::TestApp) -> Vec<Vec<u8>> {
    let db = app.storage.db().await;
    let mut values = Vec::new();
    for row in sqlx::query("SELECT private_key FROM signing_keys").fetch_all(&db).await.unwrap() {
        values.push(row.get::<Vec<u8>, _>(0));
    }
    for row in sqlx::query("SELECT value FROM secrets WHERE name = 'refresh_successor_key'")
        .fetch_all(&db)
        .await
        .unwrap()
    {
        values.push(row.get::<Vec<u8>, _>(0));
    }
    values
}

fn sealed(value: &[u8]) -> bool {
    value.starts_with(b"pcS2") && value.len() > 32 + 16
}

#[tokio::test]
async fn signing_keys_and_secrets_are_sealed_in_the_database() -> TestResult {
    let app = spawn_with(&[("PORTCULLIS_MASTER_KEY", KEY_A)]).await;
    app.signed_in("sealed@example.com").await;
    let values = stored_secrets(&app).await;
    assert_eq!(values.len(), 3, "an EdDSA and an RSA signing key, and the successor key");
    assert!(values.iter().all(|v| sealed(v)), "every value sealed");
    Ok(())
}

#[tokio::test]
async fn the_embedded_default_generates_a_private_master_key() -> TestResult {
    if common::on_postgres() {
        return Ok(());
    }
    let app = spawn_with(&[]).await;
    app.signed_in("default@example.com").await;
    assert!(stored_secrets(&app).await.iter().all(|v| sealed(v)));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&app.data_dir.join("master.key")), 0o600);
        assert_eq!(mode(&app.data_dir.join("portcullis.db")), 0o600);
    }
    let key = std::fs::read_to_string(app.data_dir.join("master.key"))?;
    assert_eq!(key.trim().len(), 44, "32 bytes of base64");
    Ok(())
}

#[tokio::test]
async fn a_database_without_its_master_key_does_not_start() -> TestResult {
    let (storage, _owner) = common::new_storage().await;
    let mut app = spawn_in(&storage, &[("PORTCULLIS_MASTER_KEY", KEY_A)]).await;
    app.stop().await;
    let settings = common::settings_for(&storage, &[("PORTCULLIS_MASTER_KEY", KEY_B)]);
    let error = portcullis::startup::Application::build(settings, true).await.err();
    let message = error.map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("master key"), "{message}");
    Ok(())
}

#[tokio::test]
async fn a_master_key_rotation_reseals_everything_under_the_new_key() -> TestResult {
    let (storage, _owner) = common::new_storage().await;
    let mut first = spawn_in(&storage, &[("PORTCULLIS_MASTER_KEY", KEY_A)]).await;
    let pair = first.signed_in("rotate@example.com").await;
    let before = stored_secrets(&first).await;
    first.stop().await;

    let rotation = [("PORTCULLIS_MASTER_KEY", KEY_B), ("PORTCULLIS_MASTER_KEY_PREVIOUS", KEY_A)];
    let mut during = spawn_in(&storage, &rotation).await;
    // Tokens signed before the rotation still verify, and refresh tokens still rotate.
    let me = during.get("/v1/auth/me", common::str_of(&pair, "access_token")).await;
    assert_eq!(me.status(), StatusCode::OK);
    let refreshed = during.refresh(common::str_of(&pair, "refresh_token")).await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    let after = stored_secrets(&during).await;
    assert!(after.iter().all(|v| sealed(v)));
    assert!(before.iter().zip(&after).all(|(b, a)| b != a), "sealed again");
    during.stop().await;

    // The previous key is no longer needed.
    let settled = spawn_in(&storage, &[("PORTCULLIS_MASTER_KEY", KEY_B)]).await;
    let me = settled.get("/v1/auth/me", common::str_of(&pair, "access_token")).await;
    assert_eq!(me.status(), StatusCode::OK);
    Ok(())
}

/// The TOTP secret of `user` as the database holds it.
async fn stored_totp_secret(app: &common::TestApp) -> Vec<u8> {
    let db = app.storage.db().await;
    let row = sqlx::query("SELECT secret FROM totp_factors").fetch_one(&db).await.unwrap();
    row.get::<Vec<u8>, _>(0)
}

#[tokio::test]
async fn totp_secrets_are_sealed_and_a_rotation_reseals_them_without_a_login() -> TestResult {
    let (storage, _owner) = common::new_storage().await;
    let mut first = spawn_in(&storage, &[("PORTCULLIS_MASTER_KEY", KEY_A)]).await;
    let pair = first.signed_in("totp-rotate@example.com").await;
    let access = common::str_of(&pair, "access_token").to_owned();
    let enrolment = first
        .request(
            reqwest::Method::POST,
            "/v1/auth/mfa/totp",
            Some(&access),
            Some(serde_json::json!({"password": common::PASSWORD})),
        )
        .await;
    let enrolment = common::ok_json(enrolment).await;
    let secret = totp_rs::Secret::Encoded(common::str_of(&enrolment, "secret").to_owned())
        .to_bytes()
        .unwrap();
    let before = stored_totp_secret(&first).await;
    assert!(sealed(&before), "sealed under the master key");
    assert!(!before.windows(secret.len()).any(|w| w == secret), "no secret in clear");
    first.stop().await;

    let rotation = [("PORTCULLIS_MASTER_KEY", KEY_B), ("PORTCULLIS_MASTER_KEY_PREVIOUS", KEY_A)];
    let mut during = spawn_in(&storage, &rotation).await;
    // The reseal runs in the background at start; give it up to 10 s.
    let mut after = stored_totp_secret(&during).await;
    for _ in 0..100 {
        if after != before {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        after = stored_totp_secret(&during).await;
    }
    assert!(sealed(&after) && after != before, "sealed again under the new key");
    during.stop().await;

    // Without the previous key the secret still opens: the enrolment confirms with its code.
    let settled = spawn_in(&storage, &[("PORTCULLIS_MASTER_KEY", KEY_B)]).await;
    let totp = totp_rs::TOTP::new_unchecked(totp_rs::Algorithm::SHA1, 6, 1, 30, secret);
    let code = totp.generate_current().unwrap();
    let confirmed = settled
        .request(
            reqwest::Method::POST,
            "/v1/auth/mfa/totp/confirm",
            Some(&access),
            Some(serde_json::json!({"code": code})),
        )
        .await;
    assert_eq!(confirmed.status(), StatusCode::OK);
    Ok(())
}

/// Every sealed value of the database, by table and column, with its first four bytes.
async fn magics(app: &common::TestApp) -> Vec<(String, Vec<u8>)> {
    let db = app.storage.db().await;
    let mut found = Vec::new();
    let columns =
        [("signing_keys", "private_key"), ("secrets", "value"), ("totp_factors", "secret")];
    for (table, column) in columns {
        let query = format!("SELECT {column} FROM {table}");
        for row in sqlx::query(&query).fetch_all(&db).await.unwrap() {
            let value: Vec<u8> = row.get(0);
            if value.starts_with(b"pcS") {
                found.push((format!("{table}.{column}"), value[..4].to_vec()));
            }
        }
    }
    found
}

/// A data directory written before the keys were derived with HKDF (tests/api/fixtures/sealed-v1)
/// still starts: the password and the TOTP secret sealed under the first derivation still sign
/// in, the audit head signed then still verifies, and every value is sealed again under HKDF.
#[tokio::test]
async fn a_data_directory_sealed_before_hkdf_starts_decrypts_and_is_sealed_again() -> TestResult {
    use portcullis::domain::Clock;

    let dir = tempfile::tempdir()?;
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api/fixtures/sealed-v1");
    for file in ["portcullis.db", "master.key"] {
        std::fs::copy(fixture.join(file), dir.path().join(file))?;
    }
    let storage = common::Storage {
        data_dir: dir.path().to_path_buf(),
        database_url: None,
        redis_prefix: None,
    };
    let app = spawn_in(&storage, &[]).await;
    // The TOTP secrets are sealed again in the background, right after the start.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let before = loop {
        let found = magics(&app).await;
        if found.iter().all(|(_, magic)| magic == b"pcS2") {
            break found;
        }
        assert!(std::time::Instant::now() < deadline, "not sealed again: {found:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let columns: Vec<&str> = before.iter().map(|(column, _)| column.as_str()).collect();
    // The four values of before, and the RSA key this start created, sealed under HKDF at once.
    assert_eq!(columns.len(), 5, "{columns:?}");
    assert!(columns.contains(&"totp_factors.secret"), "{columns:?}");

    let step = app
        .post(
            "/v1/auth/login",
            serde_json::json!({"email": "legacy@example.com", "password": "Sealed-Before-HKDF-2026!"}),
        )
        .await;
    let body: serde_json::Value = step.json().await?;
    let mfa_token = body["mfa_token"].as_str().unwrap_or_else(|| panic!("{body}")).to_owned();
    let secret = common::totp::base32_decode("BCHUC3F4VZMG26BD3EIFXWRJ3JJQUHUX").unwrap();
    let code = common::totp::code_at(&secret, portcullis::domain::SystemClock.now().timestamp());
    let signed_in = app
        .post("/v1/auth/login/mfa", serde_json::json!({"mfa_token": mfa_token, "code": code}))
        .await;
    assert_eq!(signed_in.status(), StatusCode::OK, "the TOTP secret of before opens");

    let settings = common::settings_for(&storage, &[]);
    let backends = portcullis::startup::open_backends(&settings, false).await?;
    let metrics = std::sync::Arc::new(portcullis::metrics::Metrics::new()?);
    let audit = portcullis::audit::Audit::new(backends.audit.clone(), metrics)
        .with_head_keys(backends.audit_head_keys.clone());
    let report = audit.verify(portcullis::domain::SystemClock.now()).await?;
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(report.signed_through >= 1, "the head signed before HKDF still holds");
    Ok(())
}
