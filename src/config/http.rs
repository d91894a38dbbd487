//! The listeners: where the service listens, how long a request may take, how many connections
//! it serves, native TLS, and which proxies and browser origins it trusts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::ConfigError;
use super::formats::{
    choice, cidrs, optional_path, optional_socket_addr, origins, positive_duration, socket_addr,
    value_format, within, word_of,
};

/// The highest `MAX_CONNECTIONS`: past a million the kernel's descriptor limit is the real cap.
pub const MAX_CONNECTIONS_CAP: usize = 1_000_000;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct Http {
    #[serde(rename = "bind", with = "socket_addr")]
    pub bind: SocketAddr,
    /// Longest a request may take, headers and body included: a connection whose headers are
    /// not complete by then is closed.
    #[serde(rename = "request_timeout", with = "positive_duration")]
    pub request_timeout: Duration,
    /// A request's head must arrive within this (and a TLS handshake too).
    #[serde(rename = "header_timeout", with = "positive_duration")]
    pub header_timeout: Duration,
    /// Connections served at once; past it the listener stops accepting, so more wait in the
    /// kernel's listen queue instead of taking file descriptors.
    #[serde(rename = "max_connections", with = "connections")]
    pub max_connections: usize,
    /// Connections from one client IP served at once; one more is closed at once.
    #[serde(rename = "max_connections_per_ip", with = "connections")]
    pub max_connections_per_ip: usize,
    /// Native TLS: the certificate chain (PEM, leaf first); set with `tls_key`.
    #[serde(rename = "tls_cert", with = "optional_path")]
    pub tls_cert: Option<PathBuf>,
    /// Native TLS: the certificate's private key (PEM).
    #[serde(rename = "tls_key", with = "optional_path")]
    pub tls_key: Option<PathBuf>,
    #[serde(rename = "cors_origins", with = "origins")]
    pub cors_origins: Vec<String>,
    #[serde(rename = "trusted_proxies", with = "cidrs")]
    pub trusted_proxies: Vec<IpNet>,
    /// The header read from a trusted proxy.
    #[serde(rename = "client_ip_header", with = "client_ip_header")]
    pub client_ip_header: ClientIpHeader,
    /// `/metrics` on a listener of its own; `None`: on the main one.
    #[serde(rename = "metrics_bind", with = "optional_socket_addr")]
    pub metrics_bind: Option<SocketAddr>,
}

impl Default for Http {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            request_timeout: Duration::from_secs(30),
            header_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            max_connections_per_ip: 256,
            tls_cert: None,
            tls_key: None,
            cors_origins: Vec::new(),
            trusted_proxies: Vec::new(),
            client_ip_header: ClientIpHeader::XForwardedFor,
            metrics_bind: None,
        }
    }
}

impl Http {
    /// Native TLS; `None` serves plain HTTP (behind a TLS-terminating proxy).
    pub fn tls(&self) -> Option<TlsFiles> {
        Some(TlsFiles { cert: self.tls_cert.clone()?, key: self.tls_key.clone()? })
    }

    /// `TLS_CERT` and `TLS_KEY` come together, and both files must be readable now, so that a
    /// typo stops the start instead of the first handshake. Their contents are checked when the
    /// server loads them.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        let readable = |name: &str, path: &PathBuf| match std::fs::File::open(path) {
            Ok(_) => Ok(()),
            Err(error) => Err(ConfigError::new(name, format!("cannot read {path:?}: {error}"))),
        };
        match (&self.tls_cert, &self.tls_key) {
            (None, None) => Ok(()),
            (Some(cert), Some(key)) => {
                readable("TLS_CERT", cert)?;
                readable("TLS_KEY", key)
            }
            (Some(_), None) => {
                Err(ConfigError::new("TLS_KEY", "must be set with PORTCULLIS_TLS_CERT"))
            }
            (None, Some(_)) => {
                Err(ConfigError::new("TLS_CERT", "must be set with PORTCULLIS_TLS_KEY"))
            }
        }
    }
}

/// The PEM files of native TLS: the certificate chain (leaf first) and its private key. Both are
/// re-read on SIGHUP, so a renewed certificate needs no restart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The header a trusted proxy names the client in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientIpHeader {
    /// `X-Forwarded-For`: the right-most address that is not a trusted proxy.
    XForwardedFor,
    /// `Forwarded` (RFC 7239): its `for=` parameters, read the same way.
    Forwarded,
    /// `X-Real-IP`: one address, set by the proxy.
    XRealIp,
}

const CLIENT_IP_HEADERS: [(&str, ClientIpHeader); 3] = [
    ("x-forwarded-for", ClientIpHeader::XForwardedFor),
    ("forwarded", ClientIpHeader::Forwarded),
    ("x-real-ip", ClientIpHeader::XRealIp),
];

impl ClientIpHeader {
    pub fn as_str(self) -> &'static str {
        CLIENT_IP_HEADERS.iter().find(|(_, h)| *h == self).map_or("", |(name, _)| name)
    }
}

value_format!(
    /// Header names are case-insensitive.
    client_ip_header: ClientIpHeader =
        required(|v| choice(&v.to_ascii_lowercase(), &CLIENT_IP_HEADERS)),
    |h| word_of(h, &CLIENT_IP_HEADERS)
);
value_format!(
    /// A number of connections, from 1 to `MAX_CONNECTIONS_CAP`.
    connections: usize = required(|v| within(v, 1, MAX_CONNECTIONS_CAP)),
    crate::config::formats::shown
);
