//! Rates and the keys that budgets and lockouts are counted under.

use std::net::IpAddr;
use std::time::Duration;

/// A rate of the form `N/period`: a burst of `count` refilled evenly over `period` (GCRA).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub period: Duration,
}

impl Rate {
    /// The time one unit of the budget takes to come back.
    pub fn emission_interval(self) -> Duration {
        self.period / self.count.max(1)
    }
}

/// The budget key of a client address. IPv6 clients are keyed by their /64, the block a single
/// subscriber gets (RFC 6177), so one host cannot dodge its budget by rotating addresses;
/// IPv4-mapped IPv6 addresses count as the IPv4 address.
pub fn client_ip_key(ip: Option<IpAddr>) -> String {
    match ip.map(|ip| ip.to_canonical()) {
        Some(IpAddr::V4(v4)) => format!("ip:{v4}"),
        Some(IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("ip:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        None => "ip:unknown".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_share_their_slash_64() {
        let a = client_ip_key("2001:db8:1:2::1".parse().ok());
        let b = client_ip_key("2001:db8:1:2:ffff:ffff:ffff:ffff".parse().ok());
        let c = client_ip_key("2001:db8:1:3::1".parse().ok());
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a, "ip:2001:db8:1:2::/64");
    }

    #[test]
    fn mapped_ipv4_counts_as_ipv4() {
        assert_eq!(client_ip_key("::ffff:192.0.2.7".parse().ok()), "ip:192.0.2.7");
        assert_eq!(client_ip_key("192.0.2.7".parse().ok()), "ip:192.0.2.7");
    }

    #[test]
    fn emission_interval_spreads_the_period() {
        let rate = Rate { count: 30, period: Duration::from_secs(60) };
        assert_eq!(rate.emission_interval(), Duration::from_secs(2));
    }
}
