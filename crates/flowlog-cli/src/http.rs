//! The HTTP(S) listeners of `flowlog serve`, written for a network that holds attackers:
//!
//! - a cap on open connections ([`Limits::max_connections`]); a connection past it gets a
//!   `503` with `Retry-After` (a bounded number of those at a time) and is closed;
//! - the request head must arrive within [`Limits::header_timeout`] (hyper's header timer,
//!   which also runs while a keep-alive connection sits idle), so silent connections go;
//! - accept errors (`EMFILE`, `ENFILE`, ...) back off instead of spinning;
//! - TLS (rustls) from PEM files, reloaded on SIGHUP and when the files change;
//! - on shutdown, connections get [`Limits::shutdown_timeout`] to finish and are then
//!   dropped, so a client holding a half-sent request cannot keep the process alive.
//!
//! The body read timeout is the handlers' job (`serve.rs`), as only they read bodies.
//!
//! Hand-written over hyper rather than `axum::serve` because that has no connection cap,
//! no TLS and no shutdown deadline; the pieces (hyper, tokio-rustls) are the maintained ones.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, Context};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tower::ServiceExt;

/// Bounds of one listener.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub shutdown_timeout: Duration,
}

/// Connections answered `503` at the same time, at most; past this they are just closed.
const MAX_REFUSALS_IN_FLIGHT: usize = 64;

/// The TLS configuration in force, reloaded from its files.
pub struct Tls {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<rustls::ServerConfig>>,
    /// Modification times of (cert, key) when last loaded.
    loaded: RwLock<(Option<SystemTime>, Option<SystemTime>)>,
}

impl Tls {
    /// Loads the certificate chain and key; errors name the file and what is wrong with it.
    pub fn load(cert: &Path, key: &Path) -> anyhow::Result<Arc<Tls>> {
        let config = server_config(cert, key)?;
        Ok(Arc::new(Tls {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: RwLock::new(Arc::new(config)),
            loaded: RwLock::new((mtime(cert), mtime(key))),
        }))
    }

    fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        let config = self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        tokio_rustls::TlsAcceptor::from(config)
    }

    /// Reads the files again. On error the old certificate stays in force.
    pub fn reload(&self) {
        match server_config(&self.cert, &self.key) {
            Ok(c) => {
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(c);
                *self.loaded.write().unwrap_or_else(|e| e.into_inner()) =
                    (mtime(&self.cert), mtime(&self.key));
                tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
            }
            Err(e) => tracing::error!(
                error = format!("{e:#}"),
                "TLS certificate not reloaded; the previous one stays in use"
            ),
        }
    }

    /// Reloads when SIGHUP arrives or either file's modification time changes (checked
    /// every 2 s). Runs until the process ends.
    pub fn watch(self: Arc<Self>) {
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let mut hup = match signal(SignalKind::hangup()) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!(error = %e, "no SIGHUP handler; certificate files are still watched");
                    None
                }
            };
            let mut tick = tokio::time::interval(Duration::from_secs(2));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let hup_recv = async {
                    match hup.as_mut() {
                        Some(h) => {
                            h.recv().await;
                        }
                        None => std::future::pending::<()>().await,
                    }
                };
                tokio::select! {
                    _ = hup_recv => self.reload(),
                    _ = tick.tick() => {
                        let now = (mtime(&self.cert), mtime(&self.key));
                        let changed = *self.loaded.read().unwrap_or_else(|e| e.into_inner()) != now;
                        if changed {
                            self.reload();
                        }
                    }
                }
            }
        });
    }
}

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

fn server_config(cert: &Path, key_file: &Path) -> anyhow::Result<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("cannot read TLS certificate file {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("TLS certificate file {} is not valid PEM", cert.display()))?;
    if certs.is_empty() {
        return Err(anyhow!(
            "TLS certificate file {} holds no CERTIFICATE block (expected a PEM chain, server certificate first)",
            cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key_file).with_context(|| {
        format!(
            "cannot read a private key (PKCS#8, PKCS#1 or SEC1 PEM) from {}",
            key_file.display()
        )
    })?;
    // rustls' defaults are the modern ones: TLS 1.3 and 1.2 with AEAD suites only.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .with_context(|| {
            format!(
                "the key in {} does not match the certificate in {}",
                key_file.display(),
                cert.display()
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Serves `app` on `listener` until `shutdown` resolves, within `limits`, over TLS when
/// `tls` is given.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    limits: Limits,
    tls: Option<Arc<Tls>>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS_IN_FLIGHT));
    let (drain_tx, drain_rx) = watch::channel(false);
    let mut conns = JoinSet::new();
    let mut backoff = Duration::from_millis(5);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = raised(&mut shutdown) => break,
            // Reap finished connection tasks so the set does not grow.
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(a) => {
                backoff = Duration::from_millis(5);
                a
            }
            Err(e) => {
                // Out of descriptors or memory: wait, so existing connections can finish,
                // instead of spinning on the same error.
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            if let Ok(r) = refusals.clone().try_acquire_owned() {
                let tls = tls.clone();
                tokio::spawn(async move {
                    let _r = r;
                    refuse(stream, tls, peer).await;
                });
            }
            continue;
        };
        let app = app.clone();
        let tls = tls.clone();
        let mut drain = drain_rx.clone();
        let header_timeout = limits.header_timeout;
        conns.spawn(async move {
            let _permit = permit;
            match tls {
                Some(tls) => {
                    let hs = tokio::time::timeout(header_timeout, tls.acceptor().accept(stream));
                    match hs.await {
                        Ok(Ok(s)) => connection(s, app, header_timeout, &mut drain).await,
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
                None => connection(stream, app, header_timeout, &mut drain).await,
            }
        });
    }
    drop(listener);
    // Ask every connection to finish its request in flight, then stop waiting.
    let _ = drain_tx.send(true);
    let deadline = tokio::time::sleep(limits.shutdown_timeout);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            next = conns.join_next() => if next.is_none() { break },
            _ = &mut deadline => {
                tracing::warn!(
                    open = conns.len(),
                    "shutdown deadline reached; dropping the connections still open"
                );
                conns.abort_all();
                break;
            }
        }
    }
    Ok(())
}

async fn connection<S>(
    io: S,
    app: axum::Router,
    header_timeout: Duration,
    drain: &mut watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        app.clone().oneshot(req.map(axum::body::Body::new))
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(64 * 1024);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        }
        _ = raised(drain) => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// Resolves once the flag behind `rx` is true (or its sender is gone).
async fn raised(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

/// Answers a connection past the cap with a 503 and closes it, all within 2 s.
async fn refuse(stream: tokio::net::TcpStream, tls: Option<Arc<Tls>>, peer: SocketAddr) {
    const BODY: &str = "flowlog: too many open connections; retry shortly\n";
    let reply = format!(
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    let work = async {
        match tls {
            Some(tls) => {
                let mut s = tls.acceptor().accept(stream).await?;
                s.write_all(reply.as_bytes()).await?;
                s.shutdown().await
            }
            None => {
                let mut s = stream;
                s.write_all(reply.as_bytes()).await?;
                s.shutdown().await
            }
        }
    };
    match tokio::time::timeout(Duration::from_secs(2), work).await {
        Ok(Ok(())) => tracing::debug!(%peer, "connection refused with 503: at max_connections"),
        _ => tracing::debug!(%peer, "connection past max_connections closed"),
    }
}

/// Why a listen address needs TLS or an explicit opt-in.
pub fn check_exposure(
    what: &str,
    addr: SocketAddr,
    tls: bool,
    insecure: bool,
) -> anyhow::Result<()> {
    if addr.ip().is_loopback() || tls {
        return Ok(());
    }
    if !insecure {
        return Err(anyhow!(
            "refusing to serve {what} on {addr} over plain HTTP: anyone on that network could read \
             the credentials' signed requests and the answers. Give a certificate \
             (--tls-cert/--tls-key or [server] tls_cert/tls_key), listen on loopback, or pass \
             --insecure-listen ([server] insecure_listen = true) if a trusted network or a \
             TLS-terminating proxy protects it"
        ));
    }
    eprintln!(
        "flowlog: WARNING: serving {what} on {addr} over plain HTTP (--insecure-listen): \
         requests and replies can be read and replayed by anyone on that network"
    );
    Ok(())
}

/// Bytes of request bodies held in memory at once, over all connections: a client can make
/// the server buffer only what this budget has left, whatever the number of connections.
pub const BODY_BUDGET_BYTES: usize = 64 * 1024 * 1024;

/// Why a body was not read.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyError {
    TooLarge,
    /// Not all of it arrived within the body timeout.
    Timeout,
    /// The server-wide body budget is spent: the client should retry.
    Busy,
    /// The client went away or sent a malformed chunk.
    Broken,
}

/// A body read within `max` bytes and `timeout`, charged to `budget` (1 permit = 1 KiB) as
/// its bytes arrive; the permits are released when this is dropped.
pub struct ReadBody {
    pub bytes: bytes::Bytes,
    _permits: Option<tokio::sync::OwnedSemaphorePermit>,
}

pub async fn read_body(
    body: axum::body::Body,
    max: usize,
    timeout: Duration,
    budget: &Arc<Semaphore>,
) -> Result<ReadBody, BodyError> {
    use http_body_util::BodyExt;
    let work = async {
        let mut body = body;
        let mut buf = bytes::BytesMut::new();
        let mut held: Option<tokio::sync::OwnedSemaphorePermit> = None;
        let mut held_kib = 0usize;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| BodyError::Broken)?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if buf.len() + data.len() > max {
                return Err(BodyError::TooLarge);
            }
            let need_kib = (buf.len() + data.len()).div_ceil(1024);
            if need_kib > held_kib {
                let more = u32::try_from(need_kib - held_kib).map_err(|_| BodyError::TooLarge)?;
                let p = budget
                    .clone()
                    .try_acquire_many_owned(more)
                    .map_err(|_| BodyError::Busy)?;
                match held.as_mut() {
                    Some(h) => h.merge(p),
                    None => held = Some(p),
                }
                held_kib = need_kib;
            }
            buf.extend_from_slice(&data);
        }
        Ok(ReadBody {
            bytes: buf.freeze(),
            _permits: held,
        })
    };
    tokio::time::timeout(timeout, work)
        .await
        .unwrap_or(Err(BodyError::Timeout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bodies_are_bounded_in_size_time_and_memory() {
        let budget = Arc::new(Semaphore::new(4)); // 4 KiB
        let t = Duration::from_secs(1);
        let ok = read_body(axum::body::Body::from("a=1"), 10, t, &budget)
            .await
            .unwrap();
        assert_eq!(&ok.bytes[..], b"a=1");
        assert_eq!(budget.available_permits(), 3);
        drop(ok);
        assert_eq!(budget.available_permits(), 4);
        let big = axum::body::Body::from(vec![0u8; 11]);
        assert_eq!(
            read_body(big, 10, t, &budget).await.err(),
            Some(BodyError::TooLarge)
        );
        let over = axum::body::Body::from(vec![0u8; 5000]);
        assert_eq!(
            read_body(over, 10_000, t, &budget).await.err(),
            Some(BodyError::Busy)
        );
        assert_eq!(budget.available_permits(), 4);
        // A body that never ends.
        let stream = axum::body::Body::from_stream(futures_util::stream::pending::<
            Result<bytes::Bytes, std::io::Error>,
        >());
        let slow = read_body(stream, 100, Duration::from_millis(100), &budget).await;
        assert_eq!(slow.err(), Some(BodyError::Timeout));
    }

    #[test]
    fn exposure_needs_tls_or_an_opt_in() {
        let lo: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:1".parse().unwrap();
        assert!(check_exposure("x", lo, false, false).is_ok());
        assert!(check_exposure("x", any, true, false).is_ok());
        let e = check_exposure("x", any, false, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--insecure-listen"), "{e}");
        assert!(check_exposure("x", any, false, true).is_ok());
    }
}
