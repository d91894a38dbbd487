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
mod tests;
