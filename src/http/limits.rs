//! How many connections may be served: per client IP, and within the process's open-file limit.
//!
//! Both against one client taking the service down (OWASP Denial of Service Cheat Sheet):
//! - **Per IP.** Each connection holds a slot of its peer's IP; with `MAX_CONNECTIONS_PER_IP`
//!   taken, one more is closed at once, so a single host cannot take every connection. The peer
//!   is the TCP peer: behind a proxy every client is the proxy, which is why the default is
//!   generous. The map only holds IPs with a connection open, so it is bounded by
//!   `MAX_CONNECTIONS`.
//! - **Open files.** A connection is a descriptor. `MAX_CONNECTIONS` is clamped to the soft
//!   open-file limit (raised to the hard limit first) less a reserve for everything else, so a
//!   flood makes clients wait in the listen queue instead of failing the database pool, Redis or
//!   a key file with "too many open files".

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// Descriptors kept for all but client connections: the database pool (16 connections; three
/// files each for SQLite), Redis, the listeners, outgoing mail, standard streams, key and data
/// files.
pub const RESERVED_DESCRIPTORS: usize = 64;

/// Connections the separate metrics listener serves at once: a scraper holds one.
pub const METRICS_CONNECTIONS: usize = 16;

/// Connections open per client IP.
#[derive(Debug)]
pub struct PerIp {
    limit: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection's place in its IP's count, given back when dropped.
#[derive(Debug)]
pub struct IpSlot {
    owner: Arc<PerIp>,
    ip: IpAddr,
}

impl PerIp {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(PerIp { limit, open: Mutex::new(HashMap::new()) })
    }

    /// A slot for one more connection from `ip`, or `None` if it has `limit` open already.
    pub fn acquire(self: &Arc<Self>, ip: IpAddr) -> Option<IpSlot> {
        // An IPv4 client of a dual-stack listener arrives as `::ffff:a.b.c.d`.
        let ip = ip.to_canonical();
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(ip).or_insert(0);
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(IpSlot { owner: self.clone(), ip })
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.open.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut open = self.owner.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Entry::Occupied(mut entry) = open.entry(self.ip) {
            *entry.get_mut() -= 1;
            if *entry.get() == 0 {
                entry.remove();
            }
        }
    }
}

/// The soft limit on open files after raising it to the hard limit where it is lower; `None`
/// when there is no limit.
pub fn raise_open_file_limit() -> Option<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let below_hard = match (limit.current, limit.maximum) {
        (Some(soft), Some(hard)) => soft < hard,
        (Some(_), None) => true,
        (None, _) => false,
    };
    if below_hard {
        let raised = Rlimit { current: limit.maximum, maximum: limit.maximum };
        // Refused (an unlimited hard limit the kernel caps, say): the soft limit stands.
        if setrlimit(Resource::Nofile, raised).is_ok() {
            return getrlimit(Resource::Nofile).current;
        }
    }
    limit.current
}

/// How many connections the main listener serves at once, and the metrics listener (if any),
/// within `open_files`; `Err` with the smallest workable limit when it leaves no room at all.
pub fn connection_caps(
    max_connections: usize,
    metrics_listener: bool,
    open_files: Option<u64>,
) -> Result<(usize, usize), usize> {
    let metrics = if metrics_listener { max_connections.min(METRICS_CONNECTIONS) } else { 0 };
    let Some(open_files) = open_files else { return Ok((max_connections, metrics)) };
    let kept = RESERVED_DESCRIPTORS + metrics;
    let room = usize::try_from(open_files).unwrap_or(usize::MAX).saturating_sub(kept);
    if room == 0 {
        return Err(kept + 1);
    }
    Ok((max_connections.min(room), metrics))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ip_gets_limit_slots_and_its_entry_goes_with_the_last() {
        let per_ip = PerIp::new(2);
        let one: IpAddr = "192.0.2.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let first = per_ip.acquire(one).unwrap();
        let second = per_ip.acquire(mapped).unwrap();
        assert!(per_ip.acquire(one).is_none(), "a third slot for the same IP");
        let third = per_ip.acquire(other).unwrap();
        drop(first);
        let again = per_ip.acquire(one).unwrap();
        drop((second, third, again));
        assert_eq!(per_ip.tracked(), 0);
    }

    #[test]
    fn connections_fit_the_open_file_limit_less_the_reserve() {
        assert_eq!(connection_caps(10_000, false, None), Ok((10_000, 0)));
        assert_eq!(connection_caps(10_000, false, Some(1024)), Ok((960, 0)));
        assert_eq!(connection_caps(10_000, true, Some(1024)), Ok((944, 16)));
        assert_eq!(connection_caps(100, true, Some(1024)), Ok((100, 16)));
        assert_eq!(connection_caps(4, true, Some(1024)), Ok((4, 4)));
        assert_eq!(connection_caps(100, false, Some(64)), Err(65));
        assert_eq!(connection_caps(100, false, Some(65)), Ok((1, 0)));
    }
}
