//! Tests of the client address: which hop of each header is believed, and what is junk.

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
