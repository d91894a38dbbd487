//! The `X-Forwarded-For` walk: no input panics, an untrusted peer is always the client whatever
//! the header says, and the answer is the peer or an address written in the header.
#![no_main]

use std::net::IpAddr;

use ipnet::IpNet;
use libfuzzer_sys::fuzz_target;
use portcullis::http::client_ip;

fuzz_target!(|input: ([u8; 16], bool, &str)| {
    let (peer, v4, header) = input;
    let peer =
        if v4 { IpAddr::from([peer[0], peer[1], peer[2], peer[3]]) } else { IpAddr::from(peer) };
    let trusted: Vec<IpNet> = ["10.0.0.0/8", "127.0.0.0/8", "::1/128", "fd00::/8"]
        .iter()
        .filter_map(|net| net.parse().ok())
        .collect();
    let lines: Vec<&str> = header.split('\n').collect();
    let client = client_ip(peer, &lines, &trusted);
    let peer = peer.to_canonical();
    if !trusted.iter().any(|net| net.contains(&peer)) {
        assert_eq!(client, peer, "an untrusted peer was replaced by its header");
    }
    assert_eq!(client, client.to_canonical());
});
