//! A TOTP authenticator of the tests' own (RFC 6238 over RFC 4226, HMAC-SHA-1, 6 digits), written
//! here rather than taken from the crate the server uses, so that the tests check the server
//! against the RFC and not against itself.

use hmac::{Hmac, Mac};

/// The RFC 4226 HOTP value of `counter`, 6 digits, HMAC-SHA-1.
pub fn hotp(secret: &[u8], counter: u64) -> String {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret).unwrap();
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[19] & 0x0f);
    let binary = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    format!("{:06}", binary % 1_000_000)
}

/// The TOTP code of the 30 s step that holds `unix_seconds`.
pub fn code_at(secret: &[u8], unix_seconds: i64) -> String {
    hotp(secret, u64::try_from(unix_seconds.div_euclid(30)).unwrap())
}

/// RFC 4648 base32 (upper case, no padding); `None` for any other character.
pub fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let (mut bits, mut count, mut out) = (0u32, 0u32, Vec::new());
    for c in text.bytes() {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => return None,
        };
        bits = (bits << 5) | u32::from(value);
        count += 5;
        if count >= 8 {
            count -= 8;
            out.push(u8::try_from(bits >> count).ok()?);
            bits &= (1 << count) - 1;
        }
    }
    Some(out)
}
