//! Parsers for the value formats of the settings: durations, rates, addresses, lists.
//! Each returns a message saying what was expected; the caller names the variable.

use std::net::SocketAddr;
use std::time::Duration;

use ipnet::IpNet;

use super::Rate;

/// A duration as people write it, read by `humantime`: `90s`, `15m`, `1h 30m`, `14d`, `2days`.
/// A bare number is refused (seconds or minutes?), and so is anything past ten years, far beyond
/// any sensible setting, which keeps time arithmetic from overflowing.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(value.trim())
        .map_err(|e| format!("must be a duration like 15m, 1h 30m or 14d ({e})"))?;
    if duration > MAX_DURATION {
        return Err("must be at most ten years".to_owned());
    }
    Ok(duration)
}

/// The longest duration a setting takes.
const MAX_DURATION: Duration = Duration::from_secs(10 * 365 * 86_400);

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

/// A duration as `parse_duration` reads it back: in its largest whole unit (`15m`, `14d`, `90s`).
pub(super) fn format_duration(duration: Duration) -> String {
    if duration.subsec_nanos() != 0 {
        return match duration.as_nanos() {
            nanos if nanos % 1_000_000 == 0 => format!("{}ms", nanos / 1_000_000),
            nanos => format!("{nanos}ns"),
        };
    }
    match duration.as_secs() {
        0 => "0s".to_owned(),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// A rate as `parse_rate` reads it back (`30/min`). `parse_rate` makes only these three periods;
/// any other is shown in seconds, which no parser accepts, rather than as a different rate.
pub(super) fn format_rate(rate: Rate) -> String {
    match rate.period.as_secs() {
        1 => format!("{}/s", rate.count),
        60 => format!("{}/min", rate.count),
        3_600 => format!("{}/h", rate.count),
        other => format!("{}/{other}s", rate.count),
    }
}

/// The known name nearest to `name` (ignoring case), if it is within a typo of it: for the "did
/// you mean" of an unknown setting.
pub(super) fn nearest<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let name = name.to_ascii_uppercase();
    // One edit per 4 characters, at least 1 and at most 3: `LOG` suggests nothing for `TLS`.
    let limit = (name.chars().count() / 4).clamp(1, 3);
    known
        .into_iter()
        .map(|candidate| (edit_distance(&name, &candidate.to_ascii_uppercase()), candidate))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// The Levenshtein distance, in characters. A dozen lines over some fifty short names: not worth
/// a dependency for (`strsim` is in the tree only as clap's private detail, not an API of ours).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{
        Rate, edit_distance, format_duration, format_rate, nearest, parse_duration, parse_rate,
    };

    #[test]
    fn durations_and_rates_are_formatted_as_they_parse() {
        for text in ["0s", "90s", "15m", "2h", "14d", "25h", "3601s"] {
            let duration = parse_duration(text).unwrap_or_default();
            assert_eq!(format_duration(duration), text);
        }
        assert_eq!(format_duration(Duration::from_secs(900)), "15m");
        for text in ["30/min", "5/s", "1000/h"] {
            let rate = parse_rate(text).unwrap_or(Rate { count: 0, period: Duration::ZERO });
            assert_eq!(format_rate(rate), text);
        }
    }

    #[test]
    fn a_typo_finds_the_nearest_name() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        let known = ["LOCKOUT_THRESHOLD", "LOCKOUT_WINDOW", "LOG", "TLS_KEY"];
        assert_eq!(nearest("LOCKOUT_TRESHOLD", known), Some("LOCKOUT_THRESHOLD"));
        assert_eq!(nearest("lockout_window", known), Some("LOCKOUT_WINDOW"));
        assert_eq!(nearest("LOGS", known), Some("LOG"));
        assert_eq!(nearest("FROBNICATE", known), None);
        assert_eq!(nearest("TLS", known), None);
    }
}
