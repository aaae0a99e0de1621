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
    let registry = Arc::new(Registry::default());
    let (drain_tx, drain_rx) = watch::channel(false);
    // Connections that got their permit by evicting an idle one come back through here.
    let (admit_tx, mut admit_rx) = tokio::sync::mpsc::channel::<Admitted>(MAX_REFUSALS_IN_FLIGHT);
    let mut conns = JoinSet::new();
    let mut backoff = Duration::from_millis(5);
    loop {
        let (stream, peer, permit) = tokio::select! {
            a = listener.accept() => match a {
                Ok((stream, peer)) => {
                    backoff = Duration::from_millis(5);
                    let _ = stream.set_nodelay(true);
                    match permits.clone().try_acquire_owned() {
                        Ok(p) => (stream, peer, p),
                        Err(_) => {
                            // At the cap. Close the connection that has waited longest for
                            // a request (idle keep-alive or silent) to make room; if every
                            // connection is busy, answer 503.
                            if let Ok(r) = refusals.clone().try_acquire_owned() {
                                let (permits, registry, tls) = (permits.clone(), registry.clone(), tls.clone());
                                let admit = admit_tx.clone();
                                tokio::spawn(async move {
                                    let _r = r;
                                    if registry.evict_idlest() {
                                        let wait = permits.acquire_owned();
                                        if let Ok(Ok(p)) = tokio::time::timeout(Duration::from_millis(500), wait).await {
                                            let _ = admit.send(Admitted(stream, peer, p)).await;
                                            return;
                                        }
                                    }
                                    refuse(stream, tls, peer).await;
                                });
                            }
                            continue;
                        }
                    }
                }
                Err(e) => {
                    // Out of descriptors or memory: wait, so existing connections can
                    // finish, instead of spinning on the same error.
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "accept failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            },
            Some(Admitted(stream, peer, permit)) = admit_rx.recv() => (stream, peer, permit),
            _ = raised(&mut shutdown) => break,
            // Reap finished connection tasks so the set does not grow.
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let app = app.clone();
        let tls = tls.clone();
        let mut drain = drain_rx.clone();
        let header_timeout = limits.header_timeout;
        let (slot, guard) = registry.add();
        conns.spawn(async move {
            let _permit = permit;
            let _guard = guard;
            let stream = Tracked {
                inner: stream,
                slot: slot.clone(),
            };
            let work = async {
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
            };
            tokio::select! {
                _ = work => {}
                _ = slot.evict.notified() => {
                    tracing::debug!(%peer, "idle connection closed to make room at max_connections");
                }
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

/// A connection let in after an idle one was evicted for it.
struct Admitted(
    tokio::net::TcpStream,
    SocketAddr,
    tokio::sync::OwnedSemaphorePermit,
);

/// What the listener knows of each open connection: whether it is in the middle of a
/// request (bytes read since the last reply was written) and when it last did anything.
struct Slot {
    busy: std::sync::atomic::AtomicBool,
    last_ms: std::sync::atomic::AtomicU64,
    evicting: std::sync::atomic::AtomicBool,
    evict: tokio::sync::Notify,
}

#[derive(Default)]
struct Registry {
    slots: std::sync::Mutex<std::collections::HashMap<u64, Arc<Slot>>>,
    next: std::sync::atomic::AtomicU64,
}

/// Removes a connection's slot when its task ends (or is aborted).
struct SlotGuard(Arc<Registry>, u64);

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.0
            .slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.1);
    }
}

fn now_ms() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as u64
}

impl Registry {
    fn add(self: &Arc<Self>) -> (Arc<Slot>, SlotGuard) {
        use std::sync::atomic::Ordering::Relaxed;
        let id = self.next.fetch_add(1, Relaxed);
        let slot = Arc::new(Slot {
            busy: false.into(),
            last_ms: now_ms().into(),
            evicting: false.into(),
            evict: tokio::sync::Notify::new(),
        });
        self.slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, slot.clone());
        (slot, SlotGuard(self.clone(), id))
    }

    /// Tells the connection idle longest (not inside a request) to close. False when every
    /// connection is busy.
    fn evict_idlest(&self) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let victim = slots
            .values()
            .filter(|s| !s.busy.load(Relaxed) && !s.evicting.load(Relaxed))
            .min_by_key(|s| s.last_ms.load(Relaxed));
        match victim {
            Some(v) if !v.evicting.swap(true, Relaxed) => {
                v.evict.notify_one();
                true
            }
            _ => false,
        }
    }
}

/// The TCP stream of a connection, noting reads (a request is coming in: busy) and writes
/// (a reply went out: idle again) in its [`Slot`].
struct Tracked {
    inner: tokio::net::TcpStream,
    slot: Arc<Slot>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::sync::atomic::Ordering::Relaxed;
        let before = buf.filled().len();
        let r = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.slot.busy.store(true, Relaxed);
            self.slot.last_ms.store(now_ms(), Relaxed);
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        use std::sync::atomic::Ordering::Relaxed;
        let r = std::pin::Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(r, std::task::Poll::Ready(Ok(n)) if n > 0) {
            self.slot.busy.store(false, Relaxed);
            self.slot.last_ms.store(now_ms(), Relaxed);
        }
        r
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
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

/// How much of a too-large body is still read (and thrown away) before the 413 goes out, so
/// the client is not reset mid-upload and sees the answer (over TLS a reset loses it).
pub const DRAIN_MAX_BYTES: usize = 16 * 1024 * 1024;
/// ... and for how long at most.
const DRAIN_TIME: Duration = Duration::from_secs(2);

async fn drain(mut body: axum::body::Body, mut seen: usize) {
    use http_body_util::BodyExt;
    let work = async {
        while seen < DRAIN_MAX_BYTES {
            match body.frame().await {
                Some(Ok(f)) => seen += f.data_ref().map_or(0, |d| d.len()),
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, work).await;
}

/// The first bytes of every body are not charged to the budget: ordinary requests (a few KiB)
/// never wait behind large ones, and the connection cap already bounds what these cost
/// (512 connections × 64 KiB = 32 MiB, plus hyper's read buffer of at most 64 KiB each).
pub const FREE_BODY_BYTES: usize = 64 * 1024;

/// A body read within `max` bytes and `timeout`; the part beyond [`FREE_BODY_BYTES`] is
/// charged to `budget` (1 permit = 1 KiB) as its bytes arrive, and the permits are released
/// when this is dropped.
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
        // One buffer, copied into as frames arrive: a body of many tiny chunks costs what
        // its bytes cost (keeping the frames would keep hyper's buffers and a pointer each
        // alive). What is charged is the buffer's capacity, not just its length.
        let mut buf: Vec<u8> = Vec::new();
        let mut held: Option<tokio::sync::OwnedSemaphorePermit> = None;
        let mut held_kib = 0usize;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| BodyError::Broken)?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if buf.len() + data.len() > max {
                drain(body, buf.len() + data.len()).await;
                return Err(BodyError::TooLarge);
            }
            if buf.capacity() < buf.len() + data.len() {
                let want = (buf.len() + data.len())
                    .max(buf.capacity() * 2)
                    .max(4096)
                    .min(max);
                let need_kib = want.saturating_sub(FREE_BODY_BYTES).div_ceil(1024);
                if need_kib > held_kib {
                    let more =
                        u32::try_from(need_kib - held_kib).map_err(|_| BodyError::TooLarge)?;
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
                buf.reserve_exact(want - buf.len());
            }
            buf.extend_from_slice(&data);
        }
        Ok(ReadBody {
            bytes: bytes::Bytes::from(buf),
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
        let budget = Arc::new(Semaphore::new(4)); // 4 KiB beyond the free part
        let t = Duration::from_secs(1);
        let ok = read_body(axum::body::Body::from("a=1"), 10, t, &budget)
            .await
            .unwrap();
        assert_eq!(&ok.bytes[..], b"a=1");
        assert_eq!(budget.available_permits(), 4, "small bodies are free");
        let big = axum::body::Body::from(vec![0u8; 11]);
        assert_eq!(
            read_body(big, 10, t, &budget).await.err(),
            Some(BodyError::TooLarge)
        );
        let charged = axum::body::Body::from(vec![7u8; FREE_BODY_BYTES + 3000]);
        let got = read_body(charged, 1 << 20, t, &budget).await.unwrap();
        assert_eq!(got.bytes.len(), FREE_BODY_BYTES + 3000);
        assert_eq!(budget.available_permits(), 1);
        drop(got);
        assert_eq!(budget.available_permits(), 4);
        let over = axum::body::Body::from(vec![0u8; FREE_BODY_BYTES + 5000]);
        assert_eq!(
            read_body(over, 1 << 20, t, &budget).await.err(),
            Some(BodyError::Busy)
        );
        assert_eq!(budget.available_permits(), 4);
        // Many tiny frames cost what their bytes cost.
        let frames = futures_util::stream::iter(
            (0..20_000).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"a"))),
        );
        let tiny = read_body(axum::body::Body::from_stream(frames), 1 << 20, t, &budget)
            .await
            .unwrap();
        assert_eq!(tiny.bytes.len(), 20_000);
        drop(tiny);
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
