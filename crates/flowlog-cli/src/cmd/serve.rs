//! `flowlog serve`: the whole service on one host. Loads the config (or the embedded
//! defaults), opens the SQLite store, starts delivery (spool + S3/CloudWatch Logs sinks) and
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
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use flowlog_api::{Api, ApiConfig, Credential};
use flowlog_store::SqliteStore;

use crate::config::{Config, DEFAULT_PORT};
use crate::control::LocalControl;
use crate::credentials;

/// Everything the HTTP handlers need.
struct AppState {
    api: Arc<Api>,
    control: Arc<LocalControl>,
    delivery: flowlog_delivery::Delivery,
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
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create data dir {}", data_dir.display()))?;
    let listen = args
        .listen
        .or(config.listen)
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)));

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
        })
        .collect();
    let mut bootstrap = None;
    if creds.is_empty() {
        if args.config.is_none() && !listen.ip().is_loopback() {
            bail!("refusing to listen on {listen} without a config file: the embedded defaults serve loopback only");
        }
        let (cred, created) = credentials::load_or_create(&data_dir)?;
        creds.push(Credential {
            access_key_id: cred.access_key_id.clone(),
            secret_access_key: cred.secret_access_key,
            account_id: config.account_id.clone(),
            allow: vec!["ec2:*".to_string(), "flowlog:*".to_string()],
        });
        bootstrap = Some((cred.access_key_id, created));
    }

    let store: Arc<dyn flowlog_store::Store> = Arc::new(
        SqliteStore::open(&data_dir.join("flowlog.db"))
            .with_context(|| format!("cannot open the database in {}", data_dir.display()))?,
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let statuses = Arc::new(flowlog_agent::StatusQueue::default());
    let delivery = crate::cmd::agent::open_delivery(&config, &data_dir, statuses.clone())?;
    let buckets: Option<Arc<dyn flowlog_api::BucketCheck>> =
        match config.s3.as_ref().and_then(|s| s.endpoint.as_ref()) {
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
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let addr = listener.local_addr()?;
        println!(
            "flowlog: listening on http://{addr} (EC2 API, region {})",
            config.region
        );
        println!("flowlog: data dir {}", data_dir.display());
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
            println!("  aws --endpoint-url http://{addr} ec2 describe-flow-logs");
        }
        use std::io::Write;
        std::io::stdout().flush().ok();
        let app = axum::Router::new()
            .route("/metrics", axum::routing::get(metrics))
            .route("/status", axum::routing::get(status))
            .route(
                flowlog_agent::protocol::SYNC_PATH,
                axum::routing::post(agent_sync),
            )
            .fallback(handle)
            .with_state(state);
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown_signal())
            .await
            .context("HTTP server failed")
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
    served
}

/// Answers CreateFlowLogs' bucket question with a HEAD on the configured S3 endpoint.
struct DeliveryBuckets {
    delivery: flowlog_delivery::Delivery,
    rt: tokio::runtime::Handle,
}

impl flowlog_api::BucketCheck for DeliveryBuckets {
    fn check(&self, bucket: &str) -> flowlog_api::BucketStatus {
        use flowlog_delivery::BucketCheck as B;
        match self.rt.block_on(self.delivery.check_bucket(bucket, "")) {
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

/// `POST /agent/v1/sync`: SigV4-signed like every call; the caller needs `flowlog:AgentSync`.
async fn agent_sync(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 8 * 1024 * 1024).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "sync body larger than 8 MiB").into_response();
    };
    let (headers, path, query) = request_parts(&parts);
    let result = tokio::task::spawn_blocking(
        move || -> Result<flowlog_agent::SyncResponse, (StatusCode, String)> {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            let caller = state
                .api
                .authenticate(&flowlog_api::Request {
                    method: "POST",
                    path: &path,
                    query: &query,
                    headers: &headers,
                    body: &body,
                    now,
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
            let req: flowlog_agent::SyncRequest = serde_json::from_slice(&body).map_err(|e| {
                (
                    StatusCode::BAD_REQUEST,
                    format!("invalid sync request: {e}"),
                )
            })?;
            state
                .control
                .sync_for(&caller.account_id, &req)
                .map_err(|e| (StatusCode::BAD_REQUEST, format!("{e:#}")))
        },
    )
    .await;
    match result {
        Ok(Ok(resp)) => axum::Json(resp).into_response(),
        Ok(Err((code, msg))) => (code, msg).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "sync handler failed").into_response(),
    }
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
    let body: Bytes = match axum::body::to_bytes(body, flowlog_api::MAX_BODY_BYTES + 1).await {
        Ok(b) => b,
        Err(_) => return too_large(),
    };
    if body.len() > flowlog_api::MAX_BODY_BYTES {
        return too_large();
    }
    let (headers, path, query) = request_parts(&parts);
    let method = parts.method.as_str().to_string();
    let api2 = api.clone();
    let result = tokio::task::spawn_blocking(move || {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        api2.handle(&flowlog_api::Request {
            method: &method,
            path: &path,
            query: &query,
            headers: &headers,
            body: &body,
            now,
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

fn too_large() -> Response {
    let err = flowlog_api::ApiError::new(
        413,
        "RequestEntityTooLarge",
        format!(
            "The request body is larger than the limit of {} bytes.",
            flowlog_api::MAX_BODY_BYTES
        ),
    );
    let body = flowlog_api::xml::error_body(&err, &uuid_like());
    // The rest of the body was not read: close the connection so a keep-alive client does not
    // send its next request into the remains of this one.
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        [
            (header::CONTENT_TYPE, flowlog_api::CONTENT_TYPE),
            (header::CONNECTION, "close"),
        ],
        body,
    )
        .into_response()
}
