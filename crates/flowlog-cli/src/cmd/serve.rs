//! `flowlog serve`: the whole service on one host. Loads the config (or the embedded
//! defaults), opens the store (SQLite, or PostgreSQL with `--store`), starts delivery (spool + S3/CloudWatch Logs sinks) and
//! the capture agent in process, and serves over HTTP with axum:
//!
//! - `/metrics`: Prometheus text from delivery;
//! - `POST /agent/v1/sync`: desired state for separate `flowlog agent` processes;
//! - everything else: the EC2 Query API, handed to `flowlog_api::Api::handle` on a blocking
//!   thread.
//!
//! SIGTERM/SIGINT stop the HTTP server, flush every capture's current window into the spool
//! and give delivery a few seconds to send it; what is left stays spooled for the next start.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use flowlog_api::{Api, ApiConfig, Credential};

use crate::config::{Config, DEFAULT_PORT};
use crate::credentials;
use flowlog_control::LocalControl;

/// Everything the HTTP handlers need.
struct AppState {
    api: Arc<Api>,
    control: Arc<LocalControl>,
    delivery: flowlog_delivery::Delivery,
    /// Time a client has to send a whole body.
    body_timeout: std::time::Duration,
    /// Bytes of bodies buffered at once, over all connections (1 permit = 1 KiB).
    body_budget: Arc<tokio::sync::Semaphore>,
}

#[derive(clap::Args)]
#[command(
    after_help = "With no --config, flowlog binds loopback only, creates an admin credential in \
<data-dir>/credentials.toml on first start, and prints how to use it with the aws CLI."
)]
pub struct Args {
    /// Address for the EC2 API [default: 127.0.0.1:4751; port 0 picks a free one].
    #[arg(long, env = "FLOWLOG_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory for state, spool and embedded destinations [default: ./.flowlog].
    #[arg(long, env = "FLOWLOG_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Configuration file (TOML); see flowlog.example.toml.
    #[arg(long, env = "FLOWLOG_CONFIG")]
    pub config: Option<PathBuf>,
    /// The control plane's database: postgres://user@host[:port]/database (replicas may
    /// share one; TLS with ?sslmode=require or verify-full&sslrootcert=ca.pem; password in
    /// the URL, PGPASSWORD or [store] password_file), or sqlite://PATH. Overrides [store]
    /// url [default: SQLite in <data-dir>/flowlog.db].
    #[arg(long, env = "FLOWLOG_STORE")]
    pub store: Option<String>,
    /// PEM certificate chain: serve everything over HTTPS (with --tls-key). Reloaded on
    /// SIGHUP and when the file changes. Overrides [server] tls_cert.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert. Overrides [server] tls_key.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Allow plain HTTP on a non-loopback address (a trusted lab network, or behind a
    /// TLS-terminating proxy). Without it such a listen address needs TLS.
    #[arg(long)]
    pub insecure_listen: bool,
    /// Serve /metrics on this address instead of the API's [default: on the API's address].
    #[arg(long, env = "FLOWLOG_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    crate::logging::init();
    let config = match &args.config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    let data_dir = args
        .data_dir
        .clone()
        .or_else(|| config.data_dir.clone())
        .unwrap_or_else(|| PathBuf::from(".flowlog"));
    let listen = args
        .listen
        .or(config.listen)
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)));
    let metrics_listen = args.metrics_listen.or(config.server.metrics_listen);

    // Everything about exposure is decided before anything is created on disk.
    let tls = match (
        args.tls_cert.as_ref().or(config.server.tls_cert.as_ref()),
        args.tls_key.as_ref().or(config.server.tls_key.as_ref()),
    ) {
        (Some(cert), Some(key)) => Some(crate::http::Tls::load(cert, key)?),
        _ => None,
    };
    let insecure = args.insecure_listen || config.server.insecure_listen;
    if config.credentials.is_empty() && args.config.is_none() && !listen.ip().is_loopback() {
        bail!("refusing to listen on {listen} without a config file: the embedded defaults serve loopback only");
    }
    crate::http::check_exposure(
        "the EC2 API and agent sync",
        listen,
        tls.is_some(),
        insecure,
    )?;
    if let Some(m) = metrics_listen {
        crate::http::check_exposure("/metrics", m, tls.is_some(), insecure)?;
    }
    let published = config.published_secrets();
    if !published.is_empty() && !listen.ip().is_loopback() {
        bail!(
            "refusing to listen on {listen}: credential(s) {} in {} use a secret published in \
             flowlog.example.toml, which anyone can read. Give each credential its own random \
             secret (e.g. `openssl rand -base64 30`)",
            published.join(", "),
            args.config
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "the config".into())
        );
    }
    // Bind before creating the data dir, so a busy port leaves nothing behind.
    let bind = |addr: SocketAddr| -> anyhow::Result<std::net::TcpListener> {
        let l = std::net::TcpListener::bind(addr)
            .with_context(|| format!("cannot listen on {addr}"))?;
        l.set_nonblocking(true)?;
        Ok(l)
    };
    let api_listener = bind(listen)?;
    let metrics_listener = metrics_listen.map(bind).transpose()?;
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create data dir {}", data_dir.display()))?;
    let limits = crate::http::Limits {
        max_connections: config.server.max_connections,
        header_timeout: std::time::Duration::from_secs(config.server.header_timeout_secs),
        shutdown_timeout: std::time::Duration::from_secs(config.server.shutdown_timeout_secs),
    };

    let mut creds: Vec<Credential> = config
        .credentials
        .iter()
        .map(|c| Credential {
            access_key_id: c.access_key_id.clone(),
            secret_access_key: c.secret_access_key.clone(),
            account_id: c
                .account_id
                .clone()
                .unwrap_or_else(|| config.account_id.clone()),
            allow: c.allow.clone(),
            hosts: c.hosts.clone(),
        })
        .collect();
    let mut bootstrap = None;
    if creds.is_empty() {
        let (cred, created) = credentials::load_or_create(&data_dir)?;
        creds.push(Credential {
            access_key_id: cred.access_key_id.clone(),
            secret_access_key: cred.secret_access_key,
            account_id: config.account_id.clone(),
            allow: vec!["ec2:*".to_string(), "flowlog:*".to_string()],
            hosts: None,
        });
        bootstrap = Some((cred.access_key_id, created));
    }

    let store_at = crate::store::Location::resolve(
        args.store.as_deref().or(config.store.url.as_deref()),
        &data_dir,
    )?;
    let store: Arc<dyn flowlog_store::Store> = crate::store::open(&store_at, &config.store)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let statuses = Arc::new(flowlog_agent::StatusQueue::default());
    let delivery = crate::cmd::agent::open_delivery(&config, &data_dir, statuses.clone())?;
    let buckets: Option<Arc<dyn flowlog_api::BucketCheck>> = match config.s3.as_ref() {
        Some(_) => Some(Arc::new(DeliveryBuckets {
            delivery: delivery.clone(),
            rt: rt.handle().clone(),
        })),
        None => None,
    };
    let api = Arc::new(Api {
        config: ApiConfig {
            region: config.region.clone(),
            credentials: creds,
            max_flow_logs_per_resource: match config.api.max_flow_logs_per_resource {
                0 => None,
                n => Some(n),
            },
        },
        store: store.clone(),
        buckets,
    });
    let control = Arc::new(LocalControl::new(store, &config.account_id, &config.region));
    let agent = if config.agent.enabled {
        let agent_cfg = crate::cmd::agent::agent_config(&config.agent, &data_dir)?;
        crate::cmd::agent::warn_capture_privilege(&config.agent, &agent_cfg, "flowlog");
        let agent =
            flowlog_agent::Agent::new(agent_cfg, control.clone(), delivery.clone(), statuses);
        crate::metrics::set_captures(agent.captures());
        Some(agent)
    } else {
        None
    };
    let state = Arc::new(AppState {
        api,
        control,
        delivery: delivery.clone(),
        body_timeout: std::time::Duration::from_secs(config.server.body_timeout_secs),
        body_budget: Arc::new(tokio::sync::Semaphore::new(
            crate::http::BODY_BUDGET_BYTES / 1024,
        )),
    });

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let agent_thread = agent.map(|a| {
        let stop = stop.clone();
        let handle = rt.handle().clone();
        std::thread::Builder::new()
            .name("agent".into())
            .spawn(move || {
                let _guard = handle.enter();
                a.run(stop)
            })
            .expect("spawning the agent thread")
    });
    let served = rt.block_on(async {
        let _delivery_task = delivery.spawn();
        let listener = tokio::net::TcpListener::from_std(api_listener)?;
        let addr = listener.local_addr()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        println!(
            "flowlog: listening on {scheme}://{addr} (EC2 API, region {})",
            config.region
        );
        let metrics_listener = metrics_listener
            .map(tokio::net::TcpListener::from_std)
            .transpose()?;
        if let Some(m) = &metrics_listener {
            println!("flowlog: metrics on {scheme}://{}/metrics", m.local_addr()?);
        }
        println!("flowlog: data dir {}", data_dir.display());
        if !published.is_empty() {
            println!(
                "flowlog: WARNING: credential(s) {} use a secret published in flowlog.example.toml; \
                 fine on loopback, refused on any other address",
                published.join(", ")
            );
        }
        if let Some((key, created)) = &bootstrap {
            let file = credentials::path(&data_dir);
            println!(
                "flowlog: {} admin credential {key} in {} (mode 0600). To use it:",
                if *created { "created" } else { "using" },
                file.display()
            );
            let exe = std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "flowlog".into());
            println!(
                "  export AWS_ACCESS_KEY_ID={key} AWS_DEFAULT_REGION={}",
                config.region
            );
            println!(
                "  export AWS_SECRET_ACCESS_KEY=\"$({exe} credentials --data-dir {} --secret)\"",
                data_dir.display()
            );
            println!("  aws --endpoint-url {scheme}://{addr} ec2 describe-flow-logs");
        }
        use std::io::Write;
        std::io::stdout().flush().ok();
        if let Some(t) = &tls {
            t.clone().watch();
        }
        let metrics_route = axum::Router::new()
            .route("/metrics", axum::routing::get(metrics))
            .route("/status", axum::routing::get(status))
            .with_state(state.clone());
        let mut app = axum::Router::new()
            .route(
                flowlog_agent::protocol::SYNC_PATH,
                axum::routing::post(agent_sync),
            )
            .fallback(handle)
            .with_state(state);
        if metrics_listener.is_none() {
            app = metrics_route.clone().merge(app);
        } else {
            // /metrics and /status live on their own address; here they are not found.
            for path in ["/metrics", "/status"] {
                app = app.route(
                    path,
                    axum::routing::any(|| async {
                        (
                            StatusCode::NOT_FOUND,
                            "/metrics and /status are served on --metrics-listen\n",
                        )
                    }),
                );
            }
        }
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown_signal().await;
            let _ = stop_tx.send(true);
        });
        let metrics_server = metrics_listener.map(|l| {
            tokio::spawn(crate::http::serve(
                l,
                metrics_route,
                limits.clone(),
                tls.clone(),
                stop_rx.clone(),
            ))
        });
        let served = crate::http::serve(listener, app, limits, tls, stop_rx)
            .await
            .context("HTTP server failed");
        if let Some(m) = metrics_server {
            let _ = m.await;
        }
        served
    });
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    if let Some(t) = agent_thread {
        let _ = t.join();
    }
    rt.block_on(async {
        match delivery.flush(std::time::Duration::from_secs(5)).await {
            Ok(true) => tracing::info!("every spooled record delivered"),
            Ok(false) => tracing::info!(pending = ?delivery.pending(), "records left in the spool; they are delivered after the next start"),
            Err(e) => tracing::warn!(error = %e, "final delivery pass failed; records stay spooled"),
        }
    });
    // A request handler still running on a blocking thread (its connection already dropped
    // at the shutdown deadline) must not hold the exit: everything is flushed by now.
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    served
}

/// Answers CreateFlowLogs' bucket question with a HEAD on the configured S3 endpoint.
struct DeliveryBuckets {
    delivery: flowlog_delivery::Delivery,
    rt: tokio::runtime::Handle,
}

impl flowlog_api::BucketCheck for DeliveryBuckets {
    fn check(&self, bucket: &str, prefix: &str) -> flowlog_api::BucketStatus {
        use flowlog_delivery::BucketCheck as B;
        // The marker goes where the objects go: `<prefix>/AWSLogs/`.
        let key_prefix = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        };
        match self
            .rt
            .block_on(self.delivery.check_bucket(bucket, &key_prefix))
        {
            B::Ok => flowlog_api::BucketStatus::Writable,
            B::Missing => flowlog_api::BucketStatus::Missing,
            B::AccessDenied => flowlog_api::BucketStatus::AccessDenied,
            B::Unavailable(why) => flowlog_api::BucketStatus::Unavailable(why),
        }
    }
}

/// `GET /status`: the document `flowlog status` prints (cmd/status.rs).
async fn status(State(state): State<Arc<AppState>>) -> Response {
    let doc = tokio::task::spawn_blocking(move || {
        crate::cmd::status::snapshot(&*state.api.store, &state.delivery)
    })
    .await;
    match doc {
        Ok(Ok(doc)) => axum::Json(doc).into_response(),
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "status failed").into_response(),
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let body = crate::metrics::render(&state.delivery);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// Largest agent sync body (an inventory of many ENIs).
const MAX_SYNC_BODY_BYTES: usize = 8 * 1024 * 1024;

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// `POST /agent/v1/sync`: SigV4-signed like every call; the caller needs `flowlog:AgentSync`,
/// acts for its own account only, and as a host its credential may report for.
async fn agent_sync(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let (headers, path, query) = request_parts(&parts);
    // When the client declares its body's hash (flowlog agents do), the signature is checked
    // before a byte of the body is read: strangers cannot make us buffer anything.
    let head = flowlog_api::Request {
        method: "POST",
        path: &path,
        query: &query,
        headers: &headers,
        body: &[],
        now: now_secs(),
    };
    match state.api.authenticate_head(&head) {
        Ok(true) => {}
        // Only authenticated callers may make us read (and hold) a sync body.
        Ok(false) => {
            return (
                StatusCode::UNAUTHORIZED,
                "agent sync must declare the body's SHA-256 in x-amz-content-sha256 (flowlog agent does), so the signature is checked before the body is read",
            )
                .into_response()
        }
        Err(e) => return (StatusCode::UNAUTHORIZED, e.message).into_response(),
    }
    if declared_length(&parts) > MAX_SYNC_BODY_BYTES as u64 {
        return body_error(crate::http::BodyError::TooLarge, MAX_SYNC_BODY_BYTES);
    }
    let body = match crate::http::read_body(
        body,
        MAX_SYNC_BODY_BYTES,
        state.body_timeout,
        &state.body_budget,
    )
    .await
    {
        Ok(b) => b,
        Err(e) => return body_error(e, MAX_SYNC_BODY_BYTES),
    };
    let result = tokio::task::spawn_blocking(
        move || -> Result<flowlog_agent::SyncResponse, (StatusCode, String)> {
            let caller = state
                .api
                .authenticate(&flowlog_api::Request {
                    method: "POST",
                    path: &path,
                    query: &query,
                    headers: &headers,
                    body: &body.bytes,
                    now: now_secs(),
                })
                .map_err(|e| (StatusCode::UNAUTHORIZED, e.message))?;
            if !flowlog_api::policy::allows(&caller.allow, flowlog_agent::protocol::SYNC_ACTION) {
                return Err((
                    StatusCode::FORBIDDEN,
                    format!(
                        "{} may not call {}",
                        caller.access_key_id,
                        flowlog_agent::protocol::SYNC_ACTION
                    ),
                ));
            }
            let req: flowlog_agent::SyncRequest =
                serde_json::from_slice(&body.bytes).map_err(|e| {
                    (
                        StatusCode::BAD_REQUEST,
                        format!("invalid sync request: {e}"),
                    )
                })?;
            if !caller.may_sync_as(&req.host) {
                return Err((
                    StatusCode::FORBIDDEN,
                    format!(
                        "credential {} may not sync as host {:?}: it is pinned to other hosts ([[credentials]] hosts)",
                        caller.access_key_id, req.host
                    ),
                ));
            }
            state
                .control
                .sync_for(&caller.account_id, &req)
                .map_err(sync_error)
        },
    )
    .await;
    match result {
        Ok(Ok(resp)) => axum::Json(resp).into_response(),
        Ok(Err((code, msg))) => (code, msg).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "sync handler failed").into_response(),
    }
}

/// The answer to a failed sync: the agent's mistakes are 4xx; a store failure gets the status
/// of the one mapping in `flowlog-api/src/error.rs` (a database that cannot be reached is a
/// 503 the agent retries on its next pass, never a 4xx or a 500).
fn sync_error(e: flowlog_control::SyncError) -> (StatusCode, String) {
    use flowlog_control::SyncError as E;
    match e {
        E::Inventory(_) => (StatusCode::BAD_REQUEST, e.to_string()),
        E::HostConflict(_) => (StatusCode::FORBIDDEN, e.to_string()),
        E::Store(e) => {
            let api = flowlog_api::ApiError::from(e);
            let status =
                StatusCode::from_u16(api.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (status, format!("{}: {}", api.code, api.message))
        }
    }
}

/// The `Content-Length` a request announces (0 when absent or unreadable; the reader
/// enforces the limit on what actually arrives).
fn declared_length(parts: &axum::http::request::Parts) -> u64 {
    parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// The answer to a body that could not be read; the connection is closed, since the rest
/// of the body may still be on its way.
fn body_error(e: crate::http::BodyError, max: usize) -> Response {
    use crate::http::BodyError as E;
    let (status, code, message) = match e {
        E::TooLarge => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            format!("The request body is larger than the limit of {max} bytes."),
        ),
        E::Timeout => (
            StatusCode::REQUEST_TIMEOUT,
            "RequestTimeout",
            "The request body did not arrive within the server's body timeout.".to_string(),
        ),
        E::Busy => (
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "The server is receiving too many request bodies at once; retry shortly.".to_string(),
        ),
        E::Broken => (
            StatusCode::BAD_REQUEST,
            "IncompleteBody",
            "The request body ended early or was malformed.".to_string(),
        ),
    };
    let err = flowlog_api::ApiError::new(status.as_u16(), code, message);
    let body = flowlog_api::xml::error_body(&err, &uuid_like());
    let mut r = (
        status,
        [
            (header::CONTENT_TYPE, flowlog_api::CONTENT_TYPE),
            (header::CONNECTION, "close"),
        ],
        body,
    )
        .into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    r
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
    tracing::info!("shutting down");
}

async fn handle(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let api = state.api.clone();
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    // A body announced beyond what is drained anyway is refused without reading it; a
    // smaller one is read to its limit (and the rest drained) so the client sees the 413.
    if declared_length(&parts) > crate::http::DRAIN_MAX_BYTES as u64 {
        return body_error(
            crate::http::BodyError::TooLarge,
            flowlog_api::MAX_BODY_BYTES,
        );
    }
    let body = match crate::http::read_body(
        body,
        flowlog_api::MAX_BODY_BYTES,
        state.body_timeout,
        &state.body_budget,
    )
    .await
    {
        Ok(b) => b,
        Err(e) => return body_error(e, flowlog_api::MAX_BODY_BYTES),
    };
    let (headers, path, query) = request_parts(&parts);
    let method = parts.method.as_str().to_string();
    let api2 = api.clone();
    let result = tokio::task::spawn_blocking(move || {
        api2.handle(&flowlog_api::Request {
            method: &method,
            path: &path,
            query: &query,
            headers: &headers,
            body: &body.bytes,
            now: now_secs(),
        })
    })
    .await;
    let resp = match result {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "request handler panicked");
            let err = flowlog_api::ApiError::internal();
            let id = uuid_like();
            flowlog_api::Response {
                status: err.status,
                body: flowlog_api::xml::error_body(&err, &id),
                request_id: id,
                action: "-".into(),
                error_code: Some(err.code),
            }
        }
    };
    tracing::info!(
        action = %resp.action,
        status = resp.status,
        error = resp.error_code.as_deref().unwrap_or("-"),
        request_id = %resp.request_id,
        micros = started.elapsed().as_micros() as u64,
        "request"
    );
    let code = resp.error_code.as_deref();
    crate::metrics::api().observe(&resp.action, code, started.elapsed());
    xml_response(resp.status, resp.body)
}

/// Headers (names as sent, values lossily decoded), path and raw query of a request, as the
/// SigV4 check wants them.
fn request_parts(parts: &axum::http::request::Parts) -> (Vec<(String, String)>, String, String) {
    let headers = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().unwrap_or_default().to_string();
    (headers, path, query)
}

fn uuid_like() -> String {
    format!("{:032x}", rand::random::<u128>())
}

fn xml_response(status: u16, body: String) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(flowlog_api::CONTENT_TYPE),
    );
    r
}
