//! The client's address: the socket peer, unless the peer is a trusted proxy.
//!
//! Only then is `X-Forwarded-For` read, from the right: each hop was appended by the proxy in
//! front of it, so the right-most address that is not a trusted proxy is the first one no trusted
//! party can have made up. Anything to its left may be forged by the client and is ignored.

use std::net::IpAddr;

use ipnet::IpNet;

/// At most this many hops are looked at; a longer header is spoofed padding.
const MAX_HOPS: usize = 32;

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    let ip = ip.to_canonical();
    trusted.iter().any(|net| net.contains(&ip))
}

/// The client address for a request from `peer` carrying these `X-Forwarded-For` values.
pub fn client_ip(peer: IpAddr, forwarded_for: &[&str], trusted: &[IpNet]) -> IpAddr {
    let mut client = peer.to_canonical();
    if !is_trusted(client, trusted) {
        return client;
    }
    let hops = forwarded_for.iter().flat_map(|value| value.split(',')).map(str::trim);
    let hops: Vec<&str> = hops.collect();
    for hop in hops.iter().rev().take(MAX_HOPS) {
        let Some(ip) = parse_hop(hop) else { break };
        client = ip;
        if !is_trusted(client, trusted) {
            break;
        }
    }
    client
}

/// An address as proxies write it: `203.0.113.7`, `2001:db8::1`, `[2001:db8::1]:443` or
/// `203.0.113.7:443`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    hop.parse::<std::net::SocketAddr>().ok().map(|addr| addr.ip().to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().filter_map(|n| n.parse().ok()).collect()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_says() {
        let got = client_ip(ip("198.51.100.9"), &["1.2.3.4"], &nets(&["10.0.0.0/8"]));
        assert_eq!(got, ip("198.51.100.9"));
    }

    #[test]
    fn behind_a_trusted_proxy_the_right_most_untrusted_hop_is_the_client() {
        let trusted = nets(&["10.0.0.0/8"]);
        let got = client_ip(ip("10.0.0.2"), &["6.6.6.6, 203.0.113.7, 10.0.0.1"], &trusted);
        assert_eq!(got, ip("203.0.113.7"));
    }

    #[test]
    fn several_header_lines_read_as_one_list() {
        let trusted = nets(&["10.0.0.0/8"]);
        let got = client_ip(ip("10.0.0.2"), &["6.6.6.6", "203.0.113.7"], &trusted);
        assert_eq!(got, ip("203.0.113.7"));
    }

    #[test]
    fn a_trusted_proxy_without_the_header_is_the_client() {
        assert_eq!(client_ip(ip("10.0.0.2"), &[], &nets(&["10.0.0.0/8"])), ip("10.0.0.2"));
    }

    #[test]
    fn garbage_stops_the_walk_at_the_last_trusted_hop() {
        let trusted = nets(&["10.0.0.0/8"]);
        let got = client_ip(ip("10.0.0.2"), &["203.0.113.7, not-an-ip"], &trusted);
        assert_eq!(got, ip("10.0.0.2"));
    }

    #[test]
    fn ports_and_brackets_are_understood() {
        let trusted = nets(&["10.0.0.0/8"]);
        assert_eq!(client_ip(ip("10.0.0.2"), &["[2001:db8::1]:443"], &trusted), ip("2001:db8::1"));
        assert_eq!(client_ip(ip("10.0.0.2"), &["203.0.113.7:80"], &trusted), ip("203.0.113.7"));
    }

    #[test]
    fn mapped_ipv4_peers_match_ipv4_networks() {
        let got = client_ip(ip("::ffff:10.0.0.2"), &["203.0.113.7"], &nets(&["10.0.0.0/8"]));
        assert_eq!(got, ip("203.0.113.7"));
    }
}
