//! The client's address: the socket peer, unless the peer is a trusted proxy.
//!
//! Only then is the one header chosen by `CLIENT_IP_HEADER` read; the others are ignored, so a
//! client cannot pick its address by sending a header its proxy does not set.
//!
//! - `X-Forwarded-For` and `Forwarded` (RFC 7239, its `for=` parameters) are lists, read from the
//!   right: each hop was appended by the proxy in front of it, so the right-most address that is
//!   not a trusted proxy is the first one no trusted party can have made up. Anything to its left
//!   may be forged by the client and is ignored. An element that is not an address (`unknown`,
//!   an obfuscated `_name`, junk) stops the walk at the last trusted hop.
//! - `X-Real-IP` is one address set by the proxy; anything else there leaves the proxy's own.
//!
//! Behind a trusted proxy that sends no usable header, the client is the proxy.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use crate::config::ClientIpHeader;

/// At most this many list elements are looked at; a longer header is spoofed padding.
const MAX_HOPS: usize = 64;

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    let ip = ip.to_canonical();
    trusted.iter().any(|net| net.contains(&ip))
}

/// The client address for a request from `peer` whose lines of the chosen `header` are `values`
/// (in the order they arrived; a line that is not text should be passed as `""`).
pub fn client_ip_from(
    header: ClientIpHeader,
    peer: IpAddr,
    values: &[&str],
    trusted: &[IpNet],
) -> IpAddr {
    let peer = peer.to_canonical();
    if !is_trusted(peer, trusted) {
        return peer;
    }
    match header {
        ClientIpHeader::XForwardedFor => walk(peer, xff_hops(values), trusted),
        ClientIpHeader::Forwarded => walk(peer, forwarded_hops(values), trusted),
        ClientIpHeader::XRealIp => match values {
            [value] if !value.contains(',') => parse_hop(value.trim()).unwrap_or(peer),
            _ => peer,
        },
    }
}

/// The client address for a request from `peer` carrying these `X-Forwarded-For` values.
pub fn client_ip(peer: IpAddr, forwarded_for: &[&str], trusted: &[IpNet]) -> IpAddr {
    client_ip_from(ClientIpHeader::XForwardedFor, peer, forwarded_for, trusted)
}

/// From the peer leftwards through `hops` (right-most first): the first address that is not
/// trusted, or the last trusted one when a hop is not an address or the list ends.
fn walk(peer: IpAddr, hops: impl Iterator<Item = Option<IpAddr>>, trusted: &[IpNet]) -> IpAddr {
    let mut client = peer;
    for hop in hops.take(MAX_HOPS) {
        let Some(ip) = hop else { break };
        client = ip;
        if !is_trusted(client, trusted) {
            break;
        }
    }
    client
}

/// The `X-Forwarded-For` hops, right-most first: several lines read as one list.
fn xff_hops<'a>(values: &'a [&'a str]) -> impl Iterator<Item = Option<IpAddr>> + 'a {
    values.iter().rev().flat_map(|value| value.rsplit(',')).map(|hop| parse_hop(hop.trim()))
}

/// The `for=` nodes of `Forwarded`, right-most element first: several lines read as one list.
fn forwarded_hops<'a>(values: &'a [&'a str]) -> impl Iterator<Item = Option<IpAddr>> + 'a {
    values.iter().rev().flat_map(|value| RevElements(Some(value))).map(forwarded_for)
}

/// An address as proxies write it: `203.0.113.7`, `2001:db8::1`, `[2001:db8::1]:443` or
/// `203.0.113.7:443`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    hop.parse::<std::net::SocketAddr>().ok().map(|addr| addr.ip().to_canonical())
}

/// The elements of one `Forwarded` line, from the right: commas inside quoted strings do not
/// split. Each byte is looked at once (and each backslash run once more).
struct RevElements<'a>(Option<&'a str>);

impl<'a> Iterator for RevElements<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let line = self.0?;
        let bytes = line.as_bytes();
        let mut quoted = false;
        for (i, &byte) in bytes.iter().enumerate().rev() {
            match byte {
                b'"' if !quoted => quoted = true,
                b'"' if !escaped(bytes, i) => quoted = false,
                b',' if !quoted => {
                    // Commas are ASCII, so both sides are on character boundaries.
                    let (rest, element) = (line.get(..i)?, line.get(i + 1..)?);
                    self.0 = Some(rest);
                    return Some(element);
                }
                _ => {}
            }
        }
        self.0 = None;
        Some(line)
    }
}

/// Whether the byte at `i` follows an odd run of backslashes (a quoted-pair).
fn escaped(bytes: &[u8], i: usize) -> bool {
    let before = bytes.get(..i).unwrap_or_default();
    before.iter().rev().take_while(|&&b| b == b'\\').count() % 2 == 1
}

/// The address in the `for=` parameter of one `Forwarded` element; `None` when the element is
/// malformed, has no `for=` or more than one, or names `unknown` or an obfuscated node.
fn forwarded_for(element: &str) -> Option<IpAddr> {
    let mut rest = element.trim_matches(OWS);
    let mut found = None;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix(';') {
            rest = after.trim_start_matches(OWS);
            continue;
        }
        let name_len = rest.find(|c: char| !is_tchar(c)).unwrap_or(rest.len());
        let (name, after) = rest.split_at(name_len);
        let after = after.strip_prefix('=')?;
        if name.is_empty() {
            return None;
        }
        let (value, after) = match after.strip_prefix('"') {
            Some(quoted) => quoted_string(quoted)?,
            None => {
                // Leniently, an unquoted value may hold what only a quoted one should
                // (`for=2001:db8::1`, as `set-header Forwarded for=%[src]` in HAProxy writes).
                let len = after.find(|c: char| !is_node_char(c)).unwrap_or(after.len());
                let (token, after) = after.split_at(len);
                if token.is_empty() {
                    return None;
                }
                (Cow::Borrowed(token), after)
            }
        };
        if name.eq_ignore_ascii_case("for") {
            if found.is_some() {
                return None;
            }
            found = Some(value);
        }
        rest = after.trim_start_matches(OWS);
        if !rest.is_empty() && !rest.starts_with(';') {
            return None;
        }
    }
    parse_node(&found?)
}

const OWS: [char; 2] = [' ', '\t'];

/// RFC 9110 `tchar`.
fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// A `tchar`, or a character of an address with a port.
fn is_node_char(c: char) -> bool {
    is_tchar(c) || matches!(c, ':' | '[' | ']')
}

/// The content of a quoted string whose opening quote is gone, and what follows its closing
/// quote; `None` when it does not close.
fn quoted_string(s: &str) -> Option<(Cow<'_, str>, &str)> {
    let mut content = String::new();
    let mut plain = true;
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => {
                let after = s.get(i + 1..)?;
                let value = if plain { Cow::Borrowed(s.get(..i)?) } else { Cow::Owned(content) };
                return Some((value, after));
            }
            '\\' => {
                let (_, escaped) = chars.next()?;
                if plain {
                    content.push_str(s.get(..i)?);
                    plain = false;
                }
                content.push(escaped);
            }
            c if !plain => content.push(c),
            _ => {}
        }
    }
    None
}

/// An RFC 7239 node that is an address: `192.0.2.60`, `192.0.2.60:4711`, `[2001:db8::17]` or
/// `[2001:db8::17]:4711` (the port may be obfuscated, `_abc`), and leniently a bare IPv6 address
/// (no port, then). `unknown` and obfuscated names are not addresses.
fn parse_node(node: &str) -> Option<IpAddr> {
    let (ip, port) = if let Some(bracketed) = node.strip_prefix('[') {
        let (v6, after) = bracketed.split_once(']')?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':')?),
        };
        (IpAddr::V6(v6.parse::<Ipv6Addr>().ok()?), port)
    } else if node.matches(':').nth(1).is_some() {
        (IpAddr::V6(node.parse::<Ipv6Addr>().ok()?), None)
    } else {
        let (v4, port) = match node.split_once(':') {
            Some((v4, port)) => (v4, Some(port)),
            None => (node, None),
        };
        (IpAddr::V4(v4.parse::<Ipv4Addr>().ok()?), port)
    };
    match port {
        None => Some(ip.to_canonical()),
        Some(port) if is_port(port) => Some(ip.to_canonical()),
        Some(_) => None,
    }
}

/// `1*5DIGIT` or an obfuscated port, `"_" 1*(ALPHA / DIGIT / "." / "_" / "-")`.
fn is_port(port: &str) -> bool {
    let digits = (1..=5).contains(&port.len()) && port.bytes().all(|b| b.is_ascii_digit());
    let obfuscated = port.strip_prefix('_').is_some_and(|name| {
        !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    });
    digits || obfuscated
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

    #[test]
    fn xff_unknown_and_empty_elements_stop_the_walk() {
        let trusted = nets(&["10.0.0.0/8"]);
        assert_eq!(client_ip(ip("10.0.0.2"), &["203.0.113.7, unknown"], &trusted), ip("10.0.0.2"));
        assert_eq!(client_ip(ip("10.0.0.2"), &["203.0.113.7,"], &trusted), ip("10.0.0.2"));
        assert_eq!(client_ip(ip("10.0.0.2"), &[""], &trusted), ip("10.0.0.2"));
        let got = client_ip(ip("10.0.0.2"), &["203.0.113.7", "junk", "10.0.0.1"], &trusted);
        assert_eq!(got, ip("10.0.0.1"), "the last trusted hop when the walk stops");
    }

    #[test]
    fn no_more_than_64_elements_are_looked_at() {
        let trusted = nets(&["10.0.0.0/8"]);
        let padding = vec!["10.0.0.1"; 200].join(",");
        let header = format!("203.0.113.7,{padding}");
        assert_eq!(client_ip(ip("10.0.0.2"), &[&header], &trusted), ip("10.0.0.1"));
        let near = format!("203.0.113.7,{}", vec!["10.0.0.1"; 63].join(","));
        assert_eq!(client_ip(ip("10.0.0.2"), &[&near], &trusted), ip("203.0.113.7"));
        let lines = vec!["10.0.0.1"; 200];
        assert_eq!(client_ip(ip("10.0.0.2"), &lines, &trusted), ip("10.0.0.1"));
    }

    fn fwd(values: &[&str]) -> IpAddr {
        let trusted = nets(&["10.0.0.0/8", "fd00::/8"]);
        client_ip_from(ClientIpHeader::Forwarded, ip("10.0.0.2"), values, &trusted)
    }

    const PROXY: &str = "10.0.0.2";

    #[test]
    fn forwarded_rfc_7239_examples() {
        // RFC 7239, section 4 and 7.
        assert_eq!(fwd(&["for=\"_gazonk\""]), ip(PROXY), "obfuscated: not an address");
        assert_eq!(fwd(&["For=\"[2001:db8:cafe::17]:4711\""]), ip("2001:db8:cafe::17"));
        assert_eq!(fwd(&["for=192.0.2.60;proto=http;by=203.0.113.43"]), ip("192.0.2.60"));
        assert_eq!(fwd(&["for=192.0.2.43, for=198.51.100.17"]), ip("198.51.100.17"));
        assert_eq!(fwd(&["for=192.0.2.43,for=\"[2001:db8:cafe::17]\",for=unknown"]), ip(PROXY));
        assert_eq!(fwd(&["for=unknown"]), ip(PROXY));
        assert_eq!(fwd(&["for=\"_hidden\", for=\"_SEVKISEK\""]), ip(PROXY));
        assert_eq!(fwd(&["for=\"198.51.100.17:4711\""]), ip("198.51.100.17"));
        assert_eq!(fwd(&["for=\"198.51.100.17:_port\""]), ip("198.51.100.17"));
        assert_eq!(fwd(&["for=\"[2001:db8::1]:_p-1\""]), ip("2001:db8::1"));
        assert_eq!(fwd(&["for=\"[2001:db8::1]\""]), ip("2001:db8::1"));
    }

    #[test]
    fn forwarded_is_walked_from_the_right_over_trusted_proxies() {
        assert_eq!(fwd(&["for=6.6.6.6, for=203.0.113.7, for=10.0.0.1"]), ip("203.0.113.7"));
        assert_eq!(fwd(&["for=6.6.6.6", "for=203.0.113.7", "for=10.0.0.1"]), ip("203.0.113.7"));
        assert_eq!(fwd(&["for=6.6.6.6", "for=\"[fd00::1]:80\";proto=https"]), ip("6.6.6.6"));
        assert_eq!(fwd(&["for=203.0.113.7, for=unknown, for=10.0.0.1"]), ip("10.0.0.1"));
        assert_eq!(fwd(&["for=203.0.113.7", "junk"]), ip(PROXY));
        assert_eq!(fwd(&[]), ip(PROXY), "no header: the proxy");
    }

    #[test]
    fn forwarded_parameters_names_and_quotes() {
        assert_eq!(fwd(&["FOR=192.0.2.60"]), ip("192.0.2.60"));
        assert_eq!(fwd(&["proto=https;for=192.0.2.60"]), ip("192.0.2.60"));
        assert_eq!(fwd(&["for=\"192.0.2.60\""]), ip("192.0.2.60"));
        assert_eq!(fwd(&[" for=192.0.2.60 ; proto=https "]), ip("192.0.2.60"));
        assert_eq!(fwd(&["for=\"19\\2.0.2.60\""]), ip("192.0.2.60"), "a quoted-pair");
        // A comma or semicolon inside a quoted value splits nothing.
        assert_eq!(fwd(&["for=203.0.113.7;ext=\"a, for=6.6.6.6\""]), ip("203.0.113.7"));
        assert_eq!(fwd(&["for=203.0.113.7;ext=\"a;for=6.6.6.6\""]), ip("203.0.113.7"));
        assert_eq!(fwd(&["for=203.0.113.7;ext=\"a\\\", for=6.6.6.6\""]), ip("203.0.113.7"));
        assert_eq!(fwd(&["for=6.6.6.6, by=10.0.0.2;proto=https"]), ip(PROXY), "no for=");
        assert_eq!(fwd(&["host=example.com"]), ip(PROXY));
    }

    #[test]
    fn forwarded_junk_is_not_an_address() {
        for junk in [
            "",
            ",",
            ";",
            "for",
            "for=",
            "for=\"\"",
            "=192.0.2.60",
            "for=192.0.2.60;for=198.51.100.1",
            "for=192.0.2.60:4711x",
            "for=[2001:db8::1",
            "for=2001:db8::1]",
            "for=\"2001:db8::1:\"",
            "for=\"2001:db8::1%1\"",
            "for=\"[192.0.2.60]\"",
            "for=\"192.0.2.60:80:80\"",
            "for=\"[2001:db8::1]:\"",
            "for=\"[2001:db8::1]:123456\"",
            "for=\"[2001:db8::1]x\"",
            "for=\"[2001:db8::1\"",
            "for=\"192.0.2.60:\"",
            "for=\"192.0.2.60:_\"",
            "for=\"192.0.2.60:http\"",
            "for=\"192.0.2.60",
            "for=\"192.0.2.60\"x",
            "for=192.0.2.60 proto=http",
            "for=192.0.2.256",
            "for=\"[fe80::1%eth0]\"",
            "for=192.0.2.60\u{e9}",
            "for=\"\\",
            "\"for=192.0.2.60\"",
        ] {
            assert_eq!(fwd(&[junk]), ip(PROXY), "{junk:?}");
        }
    }

    #[test]
    fn forwarded_unquoted_and_bare_addresses_are_read_leniently() {
        assert_eq!(fwd(&["for=2001:db8::1"]), ip("2001:db8::1"), "HAProxy's for=%[src]");
        assert_eq!(fwd(&["for=\"2001:db8::1\""]), ip("2001:db8::1"));
        assert_eq!(fwd(&["for=[2001:db8::1]:443;proto=https"]), ip("2001:db8::1"));
        assert_eq!(fwd(&["for=192.0.2.60:4711"]), ip("192.0.2.60"));
    }

    #[test]
    fn forwarded_mapped_addresses_are_ipv4() {
        assert_eq!(fwd(&["for=\"[::ffff:192.0.2.60]\""]), ip("192.0.2.60"));
    }

    fn real(values: &[&str]) -> IpAddr {
        let trusted = nets(&["10.0.0.0/8"]);
        client_ip_from(ClientIpHeader::XRealIp, ip(PROXY), values, &trusted)
    }

    #[test]
    fn x_real_ip_is_one_address_or_the_proxy() {
        assert_eq!(real(&["203.0.113.7"]), ip("203.0.113.7"));
        assert_eq!(real(&[" 2001:db8::7 "]), ip("2001:db8::7"));
        assert_eq!(real(&["10.0.0.9"]), ip("10.0.0.9"), "no walk: the proxy said so");
        assert_eq!(real(&[]), ip(PROXY));
        assert_eq!(real(&[""]), ip(PROXY));
        assert_eq!(real(&["unknown"]), ip(PROXY));
        assert_eq!(real(&["203.0.113.7, 6.6.6.6"]), ip(PROXY));
        assert_eq!(real(&["6.6.6.6", "203.0.113.7"]), ip(PROXY), "two lines: not one address");
    }

    #[test]
    fn only_the_chosen_header_counts_and_only_from_a_trusted_peer() {
        let trusted = nets(&["10.0.0.0/8"]);
        let outside = ip("198.51.100.9");
        for header in
            [ClientIpHeader::XForwardedFor, ClientIpHeader::Forwarded, ClientIpHeader::XRealIp]
        {
            let got = client_ip_from(header, outside, &["for=1.2.3.4", "1.2.3.4"], &trusted);
            assert_eq!(got, outside);
        }
        // An X-Forwarded-For value read as Forwarded, or the reverse, is not an address.
        assert_eq!(fwd(&["203.0.113.7"]), ip(PROXY));
        assert_eq!(client_ip(ip(PROXY), &["for=203.0.113.7"], &trusted), ip(PROXY));
    }

    /// Every short string over the characters that matter: nothing panics, an untrusted peer
    /// stays the client, and the answer is the peer or canonical.
    #[test]
    fn no_short_input_panics() {
        let alphabet: Vec<char> = "\"\\,;=[]:_ fFor1.9\u{e9}".chars().collect();
        let trusted = nets(&["10.0.0.0/8", "1.0.0.0/8"]);
        let mut input = String::new();
        let mut digits = [0usize; 5];
        let total = alphabet.len().pow(5);
        for mut n in 0..total {
            for digit in &mut digits {
                *digit = n % alphabet.len();
                n /= alphabet.len();
            }
            input.clear();
            input.extend(digits.iter().filter_map(|&d| alphabet.get(d)));
            let value = format!("for={input}");
            for header in
                [ClientIpHeader::XForwardedFor, ClientIpHeader::Forwarded, ClientIpHeader::XRealIp]
            {
                let lines = [input.as_str(), value.as_str()];
                let got = client_ip_from(header, ip(PROXY), &lines, &trusted);
                assert_eq!(got, got.to_canonical());
                let outside = client_ip_from(header, ip("198.51.100.9"), &lines, &trusted);
                assert_eq!(outside, ip("198.51.100.9"));
            }
        }
    }
}
