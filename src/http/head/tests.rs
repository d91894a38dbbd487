//! Tests of head reading and chunked framing against what hyper accepts and refuses.

use super::*;

fn complete(bytes: &[u8]) -> (usize, Body, bool) {
    match check(bytes) {
        Head::Complete { len, body, keep_alive } => (len, body, keep_alive),
        other => panic!("{other:?} for {}", String::from_utf8_lossy(bytes)),
    }
}

#[test]
fn a_head_is_complete_at_the_empty_line_and_names_its_body() {
    let head = b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello";
    assert_eq!(complete(head), (head.len() - 5, Body::Length(5), true));
    assert_eq!(check(b"GET / HTTP/1.1\r\nHost: a\r\n"), Head::Partial);
    let chunked = b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n";
    assert_eq!(complete(chunked).1, Body::Chunked);
    // Leading empty lines are skipped, as RFC 9112 §2.2 allows.
    let leading = b"\r\n\r\nGET / HTTP/1.1\r\n\r\n";
    assert_eq!(complete(leading), (leading.len(), Body::None, true));
}

#[test]
fn keep_alive_follows_the_version_and_every_connection_field() {
    assert!(!complete(b"GET / HTTP/1.0\r\n\r\n").2);
    assert!(complete(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").2);
    assert!(!complete(b"GET / HTTP/1.1\r\nConnection: close\r\nConnection: keep-alive\r\n\r\n").2);
    let both = b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(complete(both).1, Body::Chunked);
    assert!(!complete(both).2);
}

#[test]
fn what_hyper_refuses_is_refused_with_the_same_status() {
    let malformed = [
        &b"GET /healthz HTTP/1.1 extra\r\nHost: p\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: +2\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: 2, 2\r\n\r\n",
        b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        b"GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    ];
    for head in malformed {
        let refused = matches!(check(head), Head::Refused(Refusal::Malformed(_)));
        assert!(refused, "{}", String::from_utf8_lossy(head));
    }
    // Equal repeated lengths are one length.
    assert_eq!(
        complete(b"GET / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n").1,
        Body::Length(2)
    );
    let fields: String = (0..=MAX_HEADER_FIELDS).map(|i| format!("x-{i}: 1\r\n")).collect();
    let many = format!("GET / HTTP/1.1\r\n{fields}\r\n");
    assert_eq!(check(many.as_bytes()), Head::Refused(Refusal::TooLarge));
}

#[test]
fn a_head_over_64_kib_is_refused_complete_or_not() {
    let long = format!("GET / HTTP/1.1\r\nX-Pad: {}", "a".repeat(MAX_HEADER_BLOCK));
    assert_eq!(check(long.as_bytes()), Head::Refused(Refusal::TooLarge));
    let complete_long = format!("{long}\r\n\r\n");
    assert_eq!(check(complete_long.as_bytes()), Head::Refused(Refusal::TooLarge));
    let fits = format!("GET / HTTP/1.1\r\nX-Pad: {}\r\n\r\n", "a".repeat(MAX_HEADER_BLOCK - 30));
    assert!(matches!(check(fits.as_bytes()), Head::Complete { .. }));
}

#[test]
fn a_chunked_body_ends_after_its_last_chunk_and_trailers_in_any_split() {
    let body = b"5;ext=1\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\nGET";
    let end = body.len() - 3;
    for split in 0..end {
        let mut chunked = Chunked::new();
        let (first, done) = chunked.scan(&body[..split]).unwrap();
        assert!(!done && first == split);
        let (second, done) = chunked.scan(&body[split..]).unwrap();
        assert!(done, "split at {split}");
        assert_eq!(split + second, end);
    }
    let mut chunked = Chunked::new();
    assert_eq!(chunked.scan(b"0\r\n\r\n"), Ok((5, true)));
}

#[test]
fn a_bad_chunk_is_an_error() {
    for body in [&b"x\r\n"[..], b"5\r\nhelloX", b"5\nhello", b"ffffffffffffffffff\r\n"] {
        assert_eq!(Chunked::new().scan(body), Err(BadChunk), "{}", String::from_utf8_lossy(body));
    }
}
