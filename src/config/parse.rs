//! Parsers for the value formats of the settings: durations, rates, addresses, lists.
//! Each returns a message saying what was expected; the caller names the variable.

use std::net::SocketAddr;
use std::time::Duration;

use ipnet::IpNet;

use super::Rate;

/// Durations like `90s`, `15m`, `2h`, `14d`.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let error = || "must be a whole number followed by s, m, h or d, like 15m".to_owned();
    let unit_at = value.find(|c: char| !c.is_ascii_digit()).ok_or_else(error)?;
    let (number, unit) = value.split_at(unit_at);
    let number: u64 = number.parse().map_err(|_| error())?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(error()),
    };
    // Ten years is far beyond any sensible setting and keeps time arithmetic from overflowing.
    let seconds =
        number.checked_mul(scale).filter(|s| *s <= 10 * 365 * 86_400).ok_or_else(error)?;
    Ok(Duration::from_secs(seconds))
}

pub(super) fn parse_positive_duration(value: &str) -> Result<Duration, String> {
    match parse_duration(value)? {
        d if d.is_zero() => Err("must be longer than 0s".to_owned()),
        d => Ok(d),
    }
}

/// Rates like `30/min`, `5/s`, `1000/h`.
pub fn parse_rate(value: &str) -> Result<Rate, String> {
    let error = || "must be N/s, N/min or N/h with N at least 1, like 30/min".to_owned();
    let (count, period) = value.split_once('/').ok_or_else(error)?;
    let count: u32 = count.trim().parse().ok().filter(|n| *n >= 1).ok_or_else(error)?;
    let period = match period.trim() {
        "s" => Duration::from_secs(1),
        "min" => Duration::from_secs(60),
        "h" => Duration::from_secs(3_600),
        _ => return Err(error()),
    };
    Ok(Rate { count, period })
}

pub(super) fn parse_u32(value: &str) -> Result<u32, String> {
    value.parse().map_err(|_| "must be a whole number".to_owned())
}

pub(super) fn parse_non_empty(value: &str) -> Result<String, String> {
    if value.is_empty() { Err("must not be empty".to_owned()) } else { Ok(value.to_owned()) }
}

pub(super) fn parse_socket_addr(value: &str) -> Result<SocketAddr, String> {
    value.parse().map_err(|_| "must be an address and port, like 127.0.0.1:8080".to_owned())
}

pub(super) fn list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|item| !item.is_empty())
}

pub(super) fn parse_origins(value: &str) -> Result<Vec<String>, String> {
    list(value)
        .map(|origin| {
            let valid = (origin.starts_with("https://") || origin.starts_with("http://"))
                && !origin.ends_with('/')
                && origin.is_ascii()
                && axum::http::HeaderValue::from_str(origin).is_ok();
            if valid {
                Ok(origin.to_owned())
            } else {
                Err(format!("{origin:?} is not an origin like https://app.example.com"))
            }
        })
        .collect()
}

pub(super) fn parse_cidrs(value: &str) -> Result<Vec<IpNet>, String> {
    list(value)
        .map(|item| {
            item.parse::<IpNet>()
                .or_else(|_| item.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{item:?} is not a CIDR like 10.0.0.0/8"))
        })
        .collect()
}

/// Hides the password of a URL like `postgres://user:secret@host/db`, and of a `password=`
/// query parameter (libpq accepts one). The user part ends at the last `@`, so a password that
/// holds an unescaped `@` or `/` is hidden whole: masking too much is safe, too little is not.
pub(super) fn mask_url(url: &str) -> String {
    const MASK: &str = "********";
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let rest = match rest.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:{MASK}@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => rest.to_owned(),
    };
    let rest = match rest.split_once('?') {
        Some((path, query)) => {
            let params = query.split('&').map(|param| match param.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}={MASK}"),
                _ => param.to_owned(),
            });
            format!("{path}?{}", params.collect::<Vec<_>>().join("&"))
        }
        None => rest,
    };
    format!("{scheme}://{rest}")
}
