//! The listener's own reading of request heads and of the framing of their bodies, done before
//! hyper sees a byte of them.
//!
//! Hyper answers a head it cannot parse by itself, with a bare status and no way to shape it, and
//! the contract wants problem details with the security headers on every error. So each head is
//! parsed here first, with the same parser (httparse) and the same rules hyper applies after it
//! (RFC 9112 §6.3: `Transfer-Encoding` ending in `chunked`, one `Content-Length` value, no
//! `Transfer-Encoding` in HTTP/1.0), and a head hyper would refuse is refused here instead, with
//! a body. To find the next head the body in between is skipped by the same framing hyper
//! decodes it with: a `Content-Length` count, or the chunked coding's state machine. Where the
//! two could disagree this side is the more lenient, so hyper stays the authority on what is
//! served and nothing it would accept is refused here.

use axum::http::{Method, Uri};

use crate::error::{ApiError, ErrorCode};

/// The largest request head answered normally: the request line and the header fields
/// (the contract's 64 KiB).
pub const MAX_HEADER_BLOCK: usize = super::middleware::MAX_HEADER_BLOCK;

/// The most header fields a request may have (hyper's own default, set explicitly on it too).
pub const MAX_HEADER_FIELDS: usize = 100;

/// The largest request head hyper parses at all, and the size of its read and write buffers per
/// connection (set by `serve`). Heads over the contract's 64 KiB are refused before hyper sees
/// them, so this only bounds the buffers; the write buffer's bound is what stops hyper from
/// serving further pipelined requests while a client takes no answers.
pub const HARD_HEADER_LIMIT: usize = 128 * 1024;

/// Hyper's largest `Content-Length` (`u64::MAX - 2`; the two above it mark other framings).
const MAX_CONTENT_LENGTH: u64 = u64::MAX - 2;

/// How the body after a head is framed (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    None,
    Length(u64),
    Chunked,
}

/// What the bytes at the front of a connection make of the next request head.
#[derive(Debug, PartialEq, Eq)]
pub enum Head {
    /// Not complete yet, and not wrong so far.
    Partial,
    /// A head hyper accepts: its length in bytes, its body's framing, and whether the connection
    /// stays open after this exchange.
    Complete { len: usize, body: Body, keep_alive: bool },
    /// A head hyper would refuse.
    Refused(Refusal),
}

/// Why a head is refused; each maps to one problem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Over `MAX_HEADER_BLOCK` bytes or `MAX_HEADER_FIELDS` fields: 431 (RFC 6585 §5).
    TooLarge,
    /// Not HTTP/1.x syntax, or a body framing that cannot be trusted: 400 (RFC 9112 §6.3).
    Malformed(&'static str),
    /// A `Content-Length` no server accepts: 413.
    BodyTooLarge,
}

impl Refusal {
    /// The problem it is answered with. The detail never echoes the request.
    pub fn error(self) -> ApiError {
        match self {
            Refusal::TooLarge => ApiError::new(ErrorCode::HeaderTooLarge),
            Refusal::Malformed(detail) => ApiError::malformed(detail),
            Refusal::BodyTooLarge => ApiError::new(ErrorCode::PayloadTooLarge),
        }
    }
}

const MALFORMED_HEAD: Refusal =
    Refusal::Malformed("the request line or a header field is malformed");

/// Reads the head at the front of `bytes`, as hyper will.
pub fn check(bytes: &[u8]) -> Head {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADER_FIELDS];
    let mut request = httparse::Request::new(&mut fields);
    let len = match request.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if bytes.len() > MAX_HEADER_BLOCK => {
            return Head::Refused(Refusal::TooLarge);
        }
        Ok(httparse::Status::Partial) => return Head::Partial,
        Err(httparse::Error::TooManyHeaders) => return Head::Refused(Refusal::TooLarge),
        Err(_) => return Head::Refused(MALFORMED_HEAD),
    };
    if len > MAX_HEADER_BLOCK {
        return Head::Refused(Refusal::TooLarge);
    }
    let (Some(method), Some(target), Some(version)) =
        (request.method, request.path, request.version)
    else {
        return Head::Refused(MALFORMED_HEAD);
    };
    if Method::from_bytes(method.as_bytes()).is_err() || Uri::try_from(target).is_err() {
        return Head::Refused(MALFORMED_HEAD);
    }
    let http11 = version == 1;
    match framing(request.headers, http11) {
        Ok((body, keep_alive)) => Head::Complete { len, body, keep_alive },
        Err(refusal) => Head::Refused(refusal),
    }
}

/// The body's framing and whether the connection stays open, from the fields in order, as
/// hyper's `Server::parse` decides them.
fn framing(fields: &[httparse::Header<'_>], http11: bool) -> Result<(Body, bool), Refusal> {
    let mut keep_alive = http11;
    let mut close = false;
    let mut length: Option<u64> = None;
    let (mut has_length, mut has_coding, mut chunked) = (false, false, false);
    for field in fields {
        let name = field.name;
        if name.eq_ignore_ascii_case("transfer-encoding") {
            if !http11 {
                return Err(Refusal::Malformed("HTTP/1.0 has no Transfer-Encoding"));
            }
            // A coding overrides any length (RFC 9112 §6.3, item 3).
            has_coding = true;
            length = None;
            chunked = last_token_is(field.value, "chunked");
        } else if name.eq_ignore_ascii_case("content-length") {
            has_length = true;
            if has_coding {
                continue;
            }
            let Some(value) = decimal(field.value) else {
                return Err(Refusal::Malformed("Content-Length is not a number"));
            };
            match length {
                Some(previous) if previous != value => {
                    return Err(Refusal::Malformed("conflicting Content-Length values"));
                }
                Some(_) => {}
                None if value > MAX_CONTENT_LENGTH => return Err(Refusal::BodyTooLarge),
                None => length = Some(value),
            }
        } else if name.eq_ignore_ascii_case("connection") {
            // Once any `Connection` field asks to close, a later `keep-alive` does not undo it.
            if close || has_token(field.value, "close") {
                close = true;
                keep_alive = false;
            } else if !keep_alive {
                keep_alive = has_token(field.value, "keep-alive");
            }
        }
    }
    if has_coding && !chunked {
        return Err(Refusal::Malformed("a Transfer-Encoding must end with chunked"));
    }
    if has_coding && has_length {
        keep_alive = false;
    }
    let body = match (chunked, length) {
        (true, _) => Body::Chunked,
        (false, None | Some(0)) => Body::None,
        (false, Some(n)) => Body::Length(n),
    };
    Ok((body, keep_alive))
}

/// A field value as text, if it is visible ASCII (what `HeaderValue::to_str` accepts).
fn as_text(value: &[u8]) -> Option<&str> {
    let visible = value.iter().all(|&b| b == b'\t' || (0x20..0x7f).contains(&b));
    if visible { std::str::from_utf8(value).ok() } else { None }
}

fn has_token(value: &[u8], token: &str) -> bool {
    as_text(value).is_some_and(|text| text.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

fn last_token_is(value: &[u8], token: &str) -> bool {
    as_text(value)
        .and_then(|text| text.rsplit(',').next())
        .is_some_and(|last| last.trim().eq_ignore_ascii_case(token))
}

/// Digits only: no sign, no spaces, no list (hyper's `from_digits`).
fn decimal(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |n, &b| {
        if b.is_ascii_digit() { n.checked_mul(10)?.checked_add(u64::from(b - b'0')) } else { None }
    })
}

/// Where a chunked body stands (RFC 9112 §7.1), step for step as hyper's decoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Start,
    Size,
    SizeSpace,
    Extension,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    Trailer,
    TrailerLf,
    EndCr,
    EndLf,
    End,
}

/// The chunked coding of one body, read as it passes.
#[derive(Clone, Copy, Debug)]
pub struct Chunked {
    step: Step,
    /// The size being read, then what is left of the chunk's data.
    size: u64,
    extension_bytes: u64,
    trailer_bytes: usize,
    trailer_lines: usize,
}

/// Where hyper's decoder gives up (its own limits; the trailers' is its header size limit).
const EXTENSION_LIMIT: u64 = 16 * 1024;
const TRAILER_LIMIT: usize = HARD_HEADER_LIMIT;

/// The body is not valid chunked coding; hyper fails it at the same point or before.
#[derive(Debug, PartialEq, Eq)]
pub struct BadChunk;

impl Chunked {
    pub fn new() -> Self {
        Chunked {
            step: Step::Start,
            size: 0,
            extension_bytes: 0,
            trailer_bytes: 0,
            trailer_lines: 0,
        }
    }

    /// Reads the next `bytes` of the body: returns how many of them belong to it (all, unless it
    /// ends within them) and whether it has ended.
    pub fn scan(&mut self, bytes: &[u8]) -> Result<(usize, bool), BadChunk> {
        let mut at = 0;
        while at < bytes.len() {
            if self.step == Step::Data {
                let left = usize::try_from(self.size).unwrap_or(usize::MAX);
                let take = left.min(bytes.len() - at);
                at += take;
                self.size -= take as u64;
                if self.size == 0 {
                    self.step = Step::DataCr;
                }
                continue;
            }
            self.step = self.next(bytes[at])?;
            at += 1;
            if self.step == Step::End {
                return Ok((at, true));
            }
        }
        Ok((at, false))
    }

    fn next(&mut self, byte: u8) -> Result<Step, BadChunk> {
        let hex = |b: u8| char::from(b).to_digit(16).map(u64::from);
        Ok(match (self.step, byte) {
            (Step::Start | Step::Size, b) if hex(b).is_some() => {
                let digit = hex(b).ok_or(BadChunk)?;
                self.size =
                    self.size.checked_mul(16).and_then(|s| s.checked_add(digit)).ok_or(BadChunk)?;
                Step::Size
            }
            (Step::Size | Step::SizeSpace, b'\t' | b' ') => Step::SizeSpace,
            (Step::Size | Step::SizeSpace, b';') => Step::Extension,
            (Step::Size | Step::SizeSpace | Step::Extension, b'\r') => Step::SizeLf,
            (Step::Extension, b'\n') => return Err(BadChunk),
            (Step::Extension, _) => {
                self.extension_bytes += 1;
                if self.extension_bytes >= EXTENSION_LIMIT {
                    return Err(BadChunk);
                }
                Step::Extension
            }
            (Step::SizeLf, b'\n') if self.size == 0 => Step::EndCr,
            (Step::SizeLf, b'\n') => Step::Data,
            (Step::DataCr, b'\r') => Step::DataLf,
            (Step::DataLf, b'\n') => Step::Start,
            (Step::Trailer, b) => {
                self.trailer_byte()?;
                if b == b'\r' { Step::TrailerLf } else { Step::Trailer }
            }
            (Step::TrailerLf, b'\n') => {
                if self.trailer_lines >= MAX_HEADER_FIELDS {
                    return Err(BadChunk);
                }
                self.trailer_lines += 1;
                self.trailer_byte()?;
                Step::EndCr
            }
            (Step::EndCr, b'\r') => {
                if self.trailer_bytes > 0 {
                    self.trailer_byte()?;
                }
                Step::EndLf
            }
            (Step::EndCr, _) => {
                self.trailer_byte()?;
                Step::Trailer
            }
            (Step::EndLf, b'\n') => Step::End,
            _ => return Err(BadChunk),
        })
    }

    fn trailer_byte(&mut self) -> Result<(), BadChunk> {
        self.trailer_bytes += 1;
        if self.trailer_bytes >= TRAILER_LIMIT { Err(BadChunk) } else { Ok(()) }
    }
}

#[cfg(test)]
mod tests;
