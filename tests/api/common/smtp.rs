//! A real SMTP peer for the tests, on a loopback port: it speaks the part of RFC 5321 that a
//! client sends (EHLO, STARTTLS, AUTH PLAIN and LOGIN, MAIL, RCPT, DATA, RSET, NOOP, QUIT),
//! optionally over TLS from the start or only after STARTTLS, optionally requiring AUTH, and
//! keeps every message it accepts. Written here because no outside mail server runs in a test.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// One accepted message.
#[derive(Clone, Debug)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    /// The message as sent (headers and body), with dot-stuffing undone.
    pub data: String,
    /// The user that authenticated, if any.
    pub user: Option<String>,
    /// Whether it came over TLS.
    pub tls: bool,
}

#[derive(Clone, Default)]
pub struct SinkOptions {
    /// A certificate and key (PEM) to offer STARTTLS with, or TLS from the start.
    pub tls: Option<(String, String)>,
    /// TLS from the first byte (`smtps://`) rather than after STARTTLS.
    pub implicit_tls: bool,
    /// Refuse mail until a client authenticates as this user with this password.
    pub auth: Option<(String, String)>,
}

pub struct SmtpSink {
    pub address: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    arrived: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SmtpSink {
    pub async fn start(options: SinkOptions) -> SmtpSink {
        Self::start_on("127.0.0.1:0".parse().unwrap(), options).await
    }

    /// Listens on `address` (a port a test chose earlier, to start the server late).
    pub async fn start_on(address: SocketAddr, options: SinkOptions) -> SmtpSink {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket.bind(address).unwrap();
        let listener: TcpListener = socket.listen(64).unwrap();
        let address = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let arrived = Arc::new(Notify::new());
        let acceptor = options.tls.as_ref().map(|(cert, key)| acceptor(cert, key));
        let (store, signal) = (received.clone(), arrived.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let _ = stream.set_nodelay(true);
                let (options, acceptor) = (options.clone(), acceptor.clone());
                let (store, signal) = (store.clone(), signal.clone());
                tokio::spawn(async move {
                    let mut state = State { options, acceptor, store, signal, user: None };
                    let _ = state.serve(stream).await;
                });
            }
        });
        SmtpSink { address, received, arrived, task }
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits (at most `timeout`) until `count` messages have arrived; returns them all.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.arrived.notified();
            let all = self.received();
            if all.len() >= count || tokio::time::Instant::now() >= deadline {
                return all;
            }
            let _ = tokio::time::timeout_at(deadline, notified).await;
        }
    }
}

fn acceptor(cert: &str, key: &str) -> TlsAcceptor {
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(cert.as_bytes()).map(|c| c.unwrap()).collect();
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
    let config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    TlsAcceptor::from(Arc::new(config))
}

struct State {
    options: SinkOptions,
    acceptor: Option<TlsAcceptor>,
    store: Arc<Mutex<Vec<Received>>>,
    signal: Arc<Notify>,
    user: Option<String>,
}

/// What ended a session on one stream.
enum End {
    Quit,
    StartTls,
}

impl State {
    async fn serve(&mut self, stream: tokio::net::TcpStream) -> std::io::Result<()> {
        if self.options.implicit_tls {
            let acceptor = self.acceptor.clone().unwrap();
            let tls = acceptor.accept(stream).await?;
            self.session(tls, true, true).await?;
            return Ok(());
        }
        let mut plain = BufReader::new(stream);
        if let End::StartTls = self.session_on(&mut plain, false, true).await? {
            let acceptor = self.acceptor.clone().unwrap();
            let tls = acceptor.accept(plain.into_inner()).await?;
            self.session(tls, true, false).await?;
        }
        Ok(())
    }

    async fn session<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        io: S,
        tls: bool,
        greet: bool,
    ) -> std::io::Result<End> {
        let mut io = BufReader::new(io);
        self.session_on(&mut io, tls, greet).await
    }

    async fn session_on<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        io: &mut BufReader<S>,
        tls: bool,
        greet: bool,
    ) -> std::io::Result<End> {
        if greet {
            reply(io, "220 sink.test ESMTP").await?;
        }
        let (mut from, mut to) = (String::new(), Vec::new());
        loop {
            let Some(line) = read_line(io).await? else { return Ok(End::Quit) };
            let upper = line.to_ascii_uppercase();
            let verb = upper.split_whitespace().next().unwrap_or_default().to_owned();
            match verb.as_str() {
                "EHLO" | "HELO" => {
                    let mut lines = vec!["250-sink.test".to_owned(), "250-8BITMIME".to_owned()];
                    if self.acceptor.is_some() && !tls {
                        lines.push("250-STARTTLS".to_owned());
                    }
                    if self.options.auth.is_some() {
                        lines.push("250-AUTH PLAIN LOGIN".to_owned());
                    }
                    lines.push("250 SMTPUTF8".to_owned());
                    reply(io, &lines.join("\r\n")).await?;
                }
                "STARTTLS" if self.acceptor.is_some() && !tls => {
                    reply(io, "220 go ahead").await?;
                    return Ok(End::StartTls);
                }
                "AUTH" => {
                    let authenticated = self.authenticate(io, &line).await?;
                    if authenticated {
                        reply(io, "235 authenticated").await?;
                    } else {
                        reply(io, "535 authentication failed").await?;
                    }
                }
                "MAIL" => {
                    if self.options.auth.is_some() && self.user.is_none() {
                        reply(io, "530 authentication required").await?;
                        continue;
                    }
                    from = between_brackets(&line);
                    to.clear();
                    reply(io, "250 ok").await?;
                }
                "RCPT" => {
                    to.push(between_brackets(&line));
                    reply(io, "250 ok").await?;
                }
                "DATA" => {
                    reply(io, "354 end with a dot").await?;
                    let mut data = String::new();
                    loop {
                        let Some(line) = read_line(io).await? else { return Ok(End::Quit) };
                        if line == "." {
                            break;
                        }
                        data.push_str(line.strip_prefix('.').unwrap_or(&line));
                        data.push('\n');
                    }
                    let message = Received {
                        from: from.clone(),
                        to: to.clone(),
                        data,
                        user: self.user.clone(),
                        tls,
                    };
                    self.store.lock().unwrap().push(message);
                    self.signal.notify_waiters();
                    reply(io, "250 queued").await?;
                }
                "RSET" | "NOOP" => reply(io, "250 ok").await?,
                "QUIT" => {
                    reply(io, "221 bye").await?;
                    return Ok(End::Quit);
                }
                _ => reply(io, "502 not implemented").await?,
            }
        }
    }

    async fn authenticate<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        io: &mut BufReader<S>,
        line: &str,
    ) -> std::io::Result<bool> {
        let Some((user, password)) = self.options.auth.clone() else { return Ok(false) };
        let parts: Vec<&str> = line.split_whitespace().collect();
        let decode = |b64: &str| String::from_utf8(STANDARD.decode(b64).unwrap_or_default());
        let (given_user, given_password) = match parts.get(1).map(|m| m.to_ascii_uppercase()) {
            Some(m) if m == "PLAIN" => {
                let blob = match parts.get(2) {
                    Some(blob) => (*blob).to_owned(),
                    None => {
                        reply(io, "334 ").await?;
                        read_line(io).await?.unwrap_or_default()
                    }
                };
                let text = decode(&blob).unwrap_or_default();
                let mut fields = text.split('\0').skip(1);
                (
                    fields.next().unwrap_or_default().to_owned(),
                    fields.next().unwrap_or_default().to_owned(),
                )
            }
            Some(m) if m == "LOGIN" => {
                reply(io, "334 VXNlcm5hbWU6").await?;
                let name = decode(&read_line(io).await?.unwrap_or_default()).unwrap_or_default();
                reply(io, "334 UGFzc3dvcmQ6").await?;
                let secret = decode(&read_line(io).await?.unwrap_or_default()).unwrap_or_default();
                (name, secret)
            }
            _ => return Ok(false),
        };
        let ok = given_user == user && given_password == password;
        if ok {
            self.user = Some(given_user);
        }
        Ok(ok)
    }
}

async fn reply<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut BufReader<S>,
    text: &str,
) -> std::io::Result<()> {
    // One write per reply: a reply split in two writes waits on the client's delayed ACK.
    let stream = io.get_mut();
    stream.write_all(format!("{text}\r\n").as_bytes()).await?;
    stream.flush().await
}

async fn read_line<S: AsyncRead + Unpin>(io: &mut BufReader<S>) -> std::io::Result<Option<String>> {
    let mut line = String::new();
    if io.read_line(&mut line).await? == 0 {
        return Ok(None);
    }
    Ok(Some(line.trim_end_matches(['\r', '\n']).to_owned()))
}

fn between_brackets(line: &str) -> String {
    let start = line.find('<').map_or(0, |i| i + 1);
    let end = line[start..].find('>').map_or(line.len(), |i| start + i);
    line[start..end].to_owned()
}

/// The first link in `data` that starts with `prefix`, and the token at its end.
pub fn link_token(data: &str, prefix: &str) -> Option<String> {
    let start = data.find(prefix)? + prefix.len();
    let token: String = data[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    (!token.is_empty()).then_some(token)
}
