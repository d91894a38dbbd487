//! A software passkey authenticator (a platform authenticator with its browser around it), for
//! the WebAuthn tests: it answers the server's options with what `PublicKeyCredential.toJSON()`
//! gives in a browser (WebAuthn Level 3), signing with ES256 (ECDSA on P-256 with SHA-256).
//!
//! Why by hand and not with an authenticator crate: the ones there are (webauthn-authenticator-rs
//! and its softtoken) pull in OpenSSL and a whole CTAP stack, and they hide exactly the knobs these
//! tests need: a wrong origin or rp id, a counter set back, a flipped signature byte, another
//! user's handle, no user verification. The few structures are fixed and small (an attestation
//! object with `fmt: none`, a COSE EC2 key, authenticator data), so the CBOR they need is written
//! here too: unsigned and negative integers, byte and text strings, and maps, in the canonical
//! order of CTAP2.

#![allow(dead_code)]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Flags of the authenticator data (WebAuthn §6.1).
const UP: u8 = 0x01;
const UV: u8 = 0x04;
const BE: u8 = 0x08;
const BS: u8 = 0x10;
const AT: u8 = 0x40;

/// COSE algorithm identifier of ES256.
pub const ES256: i64 = -7;

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes base64url, padded or not.
pub fn unb64(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .unwrap_or_else(|e| panic!("not base64url: {text:?}: {e}"))
}

/// One credential the authenticator holds (a resident key: it remembers its user handle).
#[derive(Clone)]
pub struct Credential {
    pub id: Vec<u8>,
    pub rp_id: String,
    pub user_handle: Vec<u8>,
    /// The signature counter of the last ceremony (0 after registration).
    pub counter: u32,
    key: SigningKey,
}

impl Credential {
    /// The credential id as it travels in JSON (base64url).
    pub fn id_b64(&self) -> String {
        b64(&self.id)
    }
}

/// What one ceremony does differently from an honest browser and authenticator: the knobs of
/// the attack tests. `Tamper::default()` changes nothing.
#[derive(Clone, Debug, Default)]
pub struct Tamper {
    /// The origin written into clientDataJSON instead of the real one.
    pub origin: Option<String>,
    /// The rp id hashed into the authenticator data instead of the options' one.
    pub rp_id: Option<String>,
    /// The challenge (base64url) written into clientDataJSON instead of the options' one.
    pub challenge: Option<String>,
    /// clientDataJSON's `type` instead of `webauthn.create` / `webauthn.get`.
    pub client_data_type: Option<String>,
    /// The signature counter sent with this assertion (the stored one is left as it is).
    pub counter: Option<u32>,
    /// Flips the last byte of the DER signature (keeping it well-formed DER).
    pub flip_signature: bool,
    /// The `userHandle` sent instead of the credential's own.
    pub user_handle: Option<Vec<u8>>,
    /// Sends `userHandle: null`.
    pub no_user_handle: bool,
    /// Leaves the user-present flag out.
    pub no_user_presence: bool,
    /// Uses this credential (by id) whatever the options allow.
    pub credential_id: Option<Vec<u8>>,
    /// Says `crossOrigin: true` in clientDataJSON, as a ceremony in a cross-origin iframe does.
    pub cross_origin: bool,
}

/// The authenticator: its credentials and how it behaves.
pub struct Authenticator {
    pub credentials: Vec<Credential>,
    /// Whether it verifies the user (sets UV). A platform authenticator does; one without a
    /// PIN or biometric does not, at registration and at every assertion alike.
    pub user_verification: bool,
    /// Whether its credentials are synced passkeys (BE and BS set), as on a phone or a laptop.
    pub backed_up: bool,
    /// Whether it keeps a signature counter; one that does not sends 0 every time.
    pub keeps_counter: bool,
}

impl Default for Authenticator {
    fn default() -> Self {
        Self::new()
    }
}

impl Authenticator {
    /// A synced platform passkey provider that verifies the user and keeps a counter.
    pub fn new() -> Self {
        Authenticator {
            credentials: Vec::new(),
            user_verification: true,
            backed_up: true,
            keeps_counter: true,
        }
    }

    /// One that cannot verify the user (no UV flag, ever).
    pub fn without_user_verification() -> Self {
        Authenticator { user_verification: false, ..Self::new() }
    }

    /// The last credential it created.
    pub fn last(&self) -> &Credential {
        self.credentials.last().expect("the authenticator holds no credential")
    }

    /// `navigator.credentials.create({publicKey: options})`, then `toJSON()`.
    pub fn register(&mut self, options: &Value, origin: &str) -> Value {
        self.register_tampered(options, origin, &Tamper::default())
    }

    pub fn register_tampered(&mut self, options: &Value, origin: &str, tamper: &Tamper) -> Value {
        let rp_id = options["rp"]["id"].as_str().map_or_else(|| host_of(origin), str::to_owned);
        let user_id = options["user"]["id"].as_str().expect("options.user.id");
        let user_handle = unb64(user_id);
        assert!(
            options["pubKeyCredParams"]
                .as_array()
                .is_some_and(|p| p.iter().any(|p| p["alg"] == ES256 && p["type"] == "public-key")),
            "ES256 is not offered: {options}"
        );
        let challenge = tamper.challenge.clone().unwrap_or_else(|| {
            options["challenge"].as_str().expect("options.challenge").to_owned()
        });
        let key = new_key();
        let id = random_bytes(32);
        let public = key.verifying_key().to_sec1_point(false);
        let public = public.as_bytes();
        assert_eq!((public.len(), public[0]), (65, 4), "an uncompressed P-256 point");
        let (x, y) = (&public[1..33], &public[33..65]);

        let mut flags = AT;
        if !tamper.no_user_presence {
            flags |= UP;
        }
        if self.user_verification {
            flags |= UV;
        }
        if self.backed_up {
            flags |= BE | BS;
        }
        let mut auth_data = rp_id_hash(tamper.rp_id.as_deref().unwrap_or(&rp_id)).to_vec();
        auth_data.push(flags);
        auth_data.extend_from_slice(&0u32.to_be_bytes());
        auth_data.extend_from_slice(&[0u8; 16]); // AAGUID: none
        auth_data.extend_from_slice(&u16::try_from(id.len()).unwrap().to_be_bytes());
        auth_data.extend_from_slice(&id);
        auth_data.extend_from_slice(&cose_es256_key(x, y));

        let mut attestation_object = Vec::new();
        cbor_map(&mut attestation_object, 3);
        cbor_text(&mut attestation_object, "fmt");
        cbor_text(&mut attestation_object, "none");
        cbor_text(&mut attestation_object, "attStmt");
        cbor_map(&mut attestation_object, 0);
        cbor_text(&mut attestation_object, "authData");
        cbor_bytes(&mut attestation_object, &auth_data);

        let kind = tamper.client_data_type.as_deref().unwrap_or("webauthn.create");
        let client_data =
            client_data_json(kind, &challenge, tamper.origin.as_deref().unwrap_or(origin), tamper);

        self.credentials.push(Credential { id: id.clone(), rp_id, user_handle, counter: 0, key });
        json!({
            "id": b64(&id),
            "rawId": b64(&id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64(client_data.as_bytes()),
                "attestationObject": b64(&attestation_object),
                "authenticatorData": b64(&auth_data),
                "transports": ["internal"],
                "publicKeyAlgorithm": ES256,
                "publicKey": b64(&spki_p256(public)),
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        })
    }

    /// `navigator.credentials.get({publicKey: options})`, then `toJSON()`.
    pub fn assert(&mut self, options: &Value, origin: &str) -> Value {
        self.assert_tampered(options, origin, &Tamper::default())
    }

    pub fn assert_tampered(&mut self, options: &Value, origin: &str, tamper: &Tamper) -> Value {
        let rp_id = options["rpId"].as_str().map_or_else(|| host_of(origin), str::to_owned);
        let allowed: Vec<Vec<u8>> = options["allowCredentials"]
            .as_array()
            .map(|list| list.iter().map(|c| unb64(c["id"].as_str().expect("an id"))).collect())
            .unwrap_or_default();
        let index = self
            .credentials
            .iter()
            .position(|c| match &tamper.credential_id {
                Some(id) => &c.id == id,
                None => c.rp_id == rp_id && (allowed.is_empty() || allowed.contains(&c.id)),
            })
            .unwrap_or_else(|| panic!("no credential for {rp_id} among {allowed:?}"));
        let keeps_counter = self.keeps_counter;
        let credential = &mut self.credentials[index];
        if keeps_counter {
            credential.counter += 1;
        }
        let counter = tamper.counter.unwrap_or(credential.counter);
        let challenge = tamper.challenge.clone().unwrap_or_else(|| {
            options["challenge"].as_str().expect("options.challenge").to_owned()
        });

        let mut flags = 0;
        if !tamper.no_user_presence {
            flags |= UP;
        }
        if self.user_verification {
            flags |= UV;
        }
        if self.backed_up {
            flags |= BE | BS;
        }
        let mut auth_data = rp_id_hash(tamper.rp_id.as_deref().unwrap_or(&rp_id)).to_vec();
        auth_data.push(flags);
        auth_data.extend_from_slice(&counter.to_be_bytes());

        let kind = tamper.client_data_type.as_deref().unwrap_or("webauthn.get");
        let client_data =
            client_data_json(kind, &challenge, tamper.origin.as_deref().unwrap_or(origin), tamper);
        let mut signed = auth_data.clone();
        signed.extend_from_slice(&Sha256::digest(client_data.as_bytes()));
        let signature: Signature = credential.key.sign(&signed);
        let mut signature = signature.to_der().as_bytes().to_vec();
        if tamper.flip_signature {
            *signature.last_mut().unwrap() ^= 0x01;
        }
        let user_handle = if tamper.no_user_handle {
            Value::Null
        } else {
            Value::String(b64(tamper.user_handle.as_deref().unwrap_or(&credential.user_handle)))
        };
        json!({
            "id": b64(&credential.id),
            "rawId": b64(&credential.id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64(client_data.as_bytes()),
                "authenticatorData": b64(&auth_data),
                "signature": b64(&signature),
                "userHandle": user_handle,
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        })
    }
}

/// clientDataJSON as a browser writes it: `type` first, then `challenge`, `origin`, `crossOrigin`.
fn client_data_json(kind: &str, challenge: &str, origin: &str, tamper: &Tamper) -> String {
    let quoted = |s: &str| serde_json::to_string(s).unwrap();
    format!(
        r#"{{"type":{},"challenge":{},"origin":{},"crossOrigin":{}}}"#,
        quoted(kind),
        quoted(challenge),
        quoted(origin),
        tamper.cross_origin
    )
}

/// The host of an origin such as `http://localhost:8080`: the rp id a browser uses by default.
fn host_of(origin: &str) -> String {
    let rest = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    let host = rest.split(['/', ':']).next().unwrap_or(rest);
    host.to_owned()
}

pub fn rp_id_hash(rp_id: &str) -> [u8; 32] {
    Sha256::digest(rp_id.as_bytes()).into()
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).unwrap();
    bytes
}

fn new_key() -> SigningKey {
    loop {
        // A random scalar; the rare value outside [1, n) is drawn again.
        if let Ok(key) = SigningKey::from_slice(&random_bytes(32)) {
            return key;
        }
    }
}

/// The COSE_Key of an ES256 public key: {1: 2 (EC2), 3: -7 (ES256), -1: 1 (P-256), -2: x, -3: y}.
fn cose_es256_key(x: &[u8], y: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    cbor_map(&mut out, 5);
    cbor_int(&mut out, 1);
    cbor_int(&mut out, 2);
    cbor_int(&mut out, 3);
    cbor_int(&mut out, ES256);
    cbor_int(&mut out, -1);
    cbor_int(&mut out, 1);
    cbor_int(&mut out, -2);
    cbor_bytes(&mut out, x);
    cbor_int(&mut out, -3);
    cbor_bytes(&mut out, y);
    out
}

/// The SubjectPublicKeyInfo (DER) of an uncompressed P-256 point: the fixed prefix
/// SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING } and the point.
fn spki_p256(point: &[u8]) -> Vec<u8> {
    const PREFIX: [u8; 26] = [
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
    ];
    let mut out = PREFIX.to_vec();
    out.extend_from_slice(point);
    out
}

/// A CBOR head: major type and argument, in the shortest form (RFC 8949 §3, §4.2.1).
fn cbor_head(out: &mut Vec<u8>, major: u8, argument: u64) {
    let major = major << 5;
    match argument {
        0..=23 => out.push(major | argument as u8),
        24..=0xff => out.extend_from_slice(&[major | 24, argument as u8]),
        0x100..=0xffff => {
            out.push(major | 25);
            out.extend_from_slice(&(argument as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(major | 26);
            out.extend_from_slice(&(argument as u32).to_be_bytes());
        }
        _ => {
            out.push(major | 27);
            out.extend_from_slice(&argument.to_be_bytes());
        }
    }
}

fn cbor_int(out: &mut Vec<u8>, value: i64) {
    if value >= 0 {
        cbor_head(out, 0, value.unsigned_abs());
    } else {
        cbor_head(out, 1, (-1 - value).unsigned_abs());
    }
}

fn cbor_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    cbor_head(out, 2, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn cbor_text(out: &mut Vec<u8>, text: &str) {
    cbor_head(out, 3, text.len() as u64);
    out.extend_from_slice(text.as_bytes());
}

fn cbor_map(out: &mut Vec<u8>, pairs: u64) {
    cbor_head(out, 5, pairs);
}

#[test]
fn cbor_heads_take_the_shortest_form() {
    let mut out = Vec::new();
    cbor_int(&mut out, -7);
    cbor_int(&mut out, 24);
    cbor_int(&mut out, -1);
    cbor_text(&mut out, "fmt");
    cbor_bytes(&mut out, &[0u8; 300][..]);
    assert_eq!(&out[..8], &[0x26, 0x18, 0x18, 0x20, 0x63, b'f', b'm', b't']);
    assert_eq!(&out[8..11], &[0x59, 0x01, 0x2c]);
}
