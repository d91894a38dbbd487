//! Reading the trail: query parameters, validated, and pages with an opaque cursor.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::{AuditEvent, EventType};
use crate::domain::UserId;
use crate::domain::audit::AuditFilter;

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 200;

/// The query parameters of the audit endpoints, as sent.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    #[serde(rename = "type")]
    #[param(value_type = Option<EventType>)]
    pub kind: Option<String>,
    #[param(format = Uuid)]
    pub user_id: Option<String>,
    #[param(format = DateTime)]
    pub since: Option<String>,
    #[param(format = DateTime)]
    pub until: Option<String>,
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200, default = 50)]
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

/// One page of events, newest first, and the cursor of the next page if there is one.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = EventPage)]
pub struct Page {
    pub events: Vec<AuditEvent>,
    pub next_cursor: Option<String>,
}

impl AuditQuery {
    /// Validates the parameters; the error names the bad one.
    pub fn filter(&self) -> Result<AuditFilter, String> {
        let time = |name: &str, raw: &Option<String>| {
            raw.as_deref()
                .map(|v| {
                    chrono::DateTime::parse_from_rfc3339(v)
                        .map(|t| t.with_timezone(&chrono::Utc))
                        .map_err(|_| format!("{name} must be an RFC 3339 time"))
                })
                .transpose()
        };
        let kind = self
            .kind
            .as_deref()
            .map(|k| EventType::parse(k).ok_or_else(|| "type is not an event type".to_owned()))
            .transpose()?;
        let user = self
            .user_id
            .as_deref()
            .map(|u| UserId::parse(u).ok_or_else(|| "user_id must be a user id".to_owned()))
            .transpose()?;
        let limit = match self.limit.as_deref() {
            None => DEFAULT_LIMIT,
            Some(raw) => raw
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| format!("limit must be between 1 and {MAX_LIMIT}"))?,
        };
        // An empty cursor (`cursor=`) is the first page, as if it were absent.
        let before = self
            .cursor
            .as_deref()
            .filter(|c| !c.is_empty())
            .map(|c| {
                decode_cursor(c).ok_or_else(|| "cursor is not one this server gave".to_owned())
            })
            .transpose()?;
        Ok(AuditFilter {
            user,
            kind,
            since: time("since", &self.since)?,
            until: time("until", &self.until)?,
            before,
            limit,
        })
    }
}

pub fn encode_cursor(seq: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("seq:{seq}"))
}

fn decode_cursor(cursor: &str) -> Option<i64> {
    let raw = URL_SAFE_NO_PAD.decode(cursor.as_bytes()).ok()?;
    String::from_utf8(raw).ok()?.strip_prefix("seq:")?.parse().ok().filter(|s: &i64| *s > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_junk_is_refused() {
        assert_eq!(decode_cursor(&encode_cursor(42)), Some(42));
        assert_eq!(decode_cursor("junk"), None);
        assert_eq!(decode_cursor(&URL_SAFE_NO_PAD.encode("seq:-1")), None);
    }

    #[test]
    fn bad_parameters_are_named() {
        let bad = |q: AuditQuery| q.filter().err().unwrap_or_default();
        assert!(
            bad(AuditQuery { limit: Some("0".into()), ..Default::default() }).contains("limit")
        );
        assert!(
            bad(AuditQuery { since: Some("yesterday".into()), ..Default::default() })
                .contains("since")
        );
        assert!(
            bad(AuditQuery { kind: Some("coffee".into()), ..Default::default() }).contains("type")
        );
        let ok = AuditQuery { kind: Some("login".into()), ..Default::default() }.filter();
        assert!(ok.is_ok_and(|f| f.kind == Some(EventType::Login) && f.limit == DEFAULT_LIMIT));
    }
}
