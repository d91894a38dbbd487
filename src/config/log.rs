//! The log: what is written, and in which form.

use serde::{Deserialize, Serialize};

use super::Shown;
use super::formats::{choice, value_format, word_of};

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct Log {
    /// A `tracing` filter such as `info` or `warn,portcullis=debug` (an addition to the contract).
    #[serde(rename = "log", with = "filter")]
    pub filter: String,
    #[serde(rename = "log_format", with = "format")]
    pub format: LogFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

impl Default for Log {
    /// Unset, the format suits where the log goes: a person at a terminal, or a collector.
    fn default() -> Self {
        let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
        let format = if terminal { LogFormat::Pretty } else { LogFormat::Json };
        Self { filter: "info".to_owned(), format }
    }
}

const FORMATS: [(&str, LogFormat); 2] = [("json", LogFormat::Json), ("pretty", LogFormat::Pretty)];

value_format!(
    /// A `tracing_subscriber::EnvFilter` directive.
    filter: String = required(|v| {
        tracing_subscriber::EnvFilter::try_new(v)
            .map(|_| v.to_owned())
            .map_err(|e| format!("is not a log filter: {e}"))
    }),
    |v| Shown::Value(v.clone())
);
value_format!(
    /// `json` or `pretty`; blank is the default for where the log goes.
    format: LogFormat = required(|v| match v {
        "" => Ok(Log::default().format),
        _ => choice(v, &FORMATS),
    }),
    |f| word_of(f, &FORMATS)
);
