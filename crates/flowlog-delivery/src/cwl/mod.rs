//! CloudWatch Logs delivery: the PutLogEvents batcher ([`batch`]), the SDK client ([`client`]),
//! the embedded SQLite store read by `flowlog logs` ([`local`]), and [`CwlSink`], which assumes
//! each flow log's role, creates groups and streams on first traffic and keeps sequence tokens.

pub mod batch;
pub mod client;
pub mod local;

use crate::aws::{self, AwsContext};
use crate::config::CwlConfig;
use crate::router::{Event, StreamKey};
use crate::DeliveryError;
use aws_config::SdkConfig;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;
use client::{CwlClient, PutError};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{Mutex, OnceCell};

/// Outcome of delivering one PutLogEvents batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PutOutcome {
    pub accepted: u64,
    pub rejected: u64,
}

#[derive(Default)]
struct StreamState {
    created: bool,
    token: Option<String>,
}

/// Real CloudWatch Logs (or any compatible service): every flow log's role is assumed.
pub struct RemoteCwl {
    ctx: Arc<AwsContext>,
    cfg: CwlConfig,
    base: OnceCell<SdkConfig>,
    /// One client per (role, region, session): each holds its role's cached credentials.
    clients: Mutex<HashMap<(String, String, String), CwlClient>>,
    /// Per stream: created yet, and its sequence token. One lock per stream, so streams are
    /// delivered side by side and only one batch of a stream is in flight at a time.
    streams: std::sync::Mutex<HashMap<StreamKey, Arc<Mutex<StreamState>>>>,
}

pub enum CwlSink {
    Remote(Box<RemoteCwl>),
    Local(std::sync::Mutex<local::LocalLogs>),
}

impl RemoteCwl {
    pub fn new(ctx: Arc<AwsContext>, cfg: &CwlConfig) -> RemoteCwl {
        RemoteCwl {
            ctx,
            cfg: cfg.clone(),
            base: OnceCell::new(),
            clients: Mutex::new(HashMap::new()),
            streams: Default::default(),
        }
    }

    /// The client delivering for `role_arn` on behalf of `flow_log_id` in `region`: keys from
    /// `[[cloudwatch_logs.roles]]` when the role is listed there, else the role assumed with
    /// the section's credentials.
    async fn client(
        &self,
        role_arn: &str,
        flow_log_id: &str,
        region: &str,
    ) -> Result<CwlClient, DeliveryError> {
        if role_arn.is_empty() {
            return Err(DeliveryError::Access(format!(
                "flow log {flow_log_id} has no DeliverLogsPermissionArn to deliver as"
            )));
        }
        let base = self
            .base
            .get_or_try_init(|| async {
                let section = self.cfg.section();
                self.ctx.load(&section, Some(region)).await
            })
            .await?;
        let session = aws::session_name(flow_log_id);
        let key = (role_arn.to_string(), region.to_string(), session.clone());
        let mut clients = self.clients.lock().await;
        if let Some(c) = clients.get(&key) {
            return Ok(c.clone());
        }
        let creds = match self.cfg.roles.iter().find(|r| r.role_arn == role_arn) {
            Some(r) => SharedCredentialsProvider::new(Credentials::new(
                &r.access_key_id,
                &r.secret_access_key,
                r.session_token.clone(),
                None,
                "flowlog-config-role",
            )),
            None => self.ctx.assumed(base, role_arn, &session).await,
        };
        let c = CwlClient::new(base, region, self.cfg.endpoint.as_deref(), Some(creds));
        clients.insert(key, c.clone());
        Ok(c)
    }

    fn stream(&self, key: &StreamKey) -> Arc<Mutex<StreamState>> {
        self.streams
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.clone())
            .or_default()
            .clone()
    }

    /// Sends one batch (already within limits) to the stream, creating group and stream on
    /// first use and following sequence-token hints.
    pub async fn put(
        &self,
        role_arn: &str,
        flow_log_id: &str,
        key: &StreamKey,
        events: &[&Event],
    ) -> Result<PutOutcome, DeliveryError> {
        let region = self.cfg.region.as_deref().unwrap_or(&key.region);
        let client = self.client(role_arn, flow_log_id, region).await?;
        let state = self.stream(key);
        let mut state = state.lock().await;
        if !state.created {
            client.ensure_group(&key.group).await?;
            client.ensure_stream(&key.group, &key.stream).await?;
            state.created = true;
        }
        for _attempt in 0..4 {
            match client
                .put_log_events(&key.group, &key.stream, events, state.token.as_deref())
                .await
            {
                Ok(r) => {
                    state.token = r.next_sequence_token;
                    let rejected = r.rejected.count(events.len()) as u64;
                    return Ok(PutOutcome {
                        accepted: events.len() as u64 - rejected,
                        rejected,
                    });
                }
                Err(PutError::InvalidSequenceToken(t)) => state.token = t,
                Err(PutError::DataAlreadyAccepted(t)) => {
                    state.token = t;
                    return Ok(PutOutcome {
                        accepted: events.len() as u64,
                        rejected: 0,
                    });
                }
                Err(PutError::NotFound) => {
                    client.ensure_group(&key.group).await?;
                    client.ensure_stream(&key.group, &key.stream).await?;
                    state.token = None;
                }
                Err(PutError::Other(e)) => {
                    if matches!(e, DeliveryError::Access(_)) {
                        // Permissions may be fixed (or the group re-created) before the retry.
                        state.created = false;
                    }
                    return Err(e);
                }
            }
        }
        Err(DeliveryError::Server(
            "PutLogEvents: sequence token kept changing".into(),
        ))
    }
}
