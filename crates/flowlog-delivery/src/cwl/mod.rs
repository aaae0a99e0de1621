//! CloudWatch Logs delivery: the PutLogEvents batcher ([`batch`]), the JSON 1.1 client
//! ([`client`]), the embedded SQLite store read by `flowlog logs` ([`local`]), and [`CwlSink`],
//! which creates groups and streams on first traffic and keeps sequence tokens.

pub mod batch;
pub mod client;
pub mod local;

use crate::config::CwlConfig;
use crate::router::{Event, StreamKey};
use crate::sigv4::Credentials;
use crate::DeliveryError;
use client::{CallError, CwlClient};
use std::collections::HashMap;
use tokio::sync::Mutex;

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

/// A remote CloudWatch Logs endpoint with role credentials.
pub struct RemoteCwl {
    client: CwlClient,
    region: Option<String>,
    roles: HashMap<String, Credentials>,
    streams: Mutex<HashMap<StreamKey, StreamState>>,
}

pub enum CwlSink {
    Remote(RemoteCwl),
    Local(std::sync::Mutex<local::LocalLogs>),
}

impl RemoteCwl {
    pub fn new(cfg: &CwlConfig) -> Result<RemoteCwl, DeliveryError> {
        let endpoint = cfg
            .endpoint
            .as_deref()
            .ok_or_else(|| DeliveryError::Config("cloudwatch_logs.endpoint is not set".into()))?;
        let roles = cfg
            .roles
            .iter()
            .map(|r| {
                (
                    r.role_arn.clone(),
                    Credentials {
                        access_key_id: r.access_key_id.clone(),
                        secret_access_key: r.secret_access_key.clone(),
                        session_token: r.session_token.clone(),
                    },
                )
            })
            .collect();
        Ok(RemoteCwl {
            client: CwlClient::new(endpoint)?,
            region: cfg.region.clone(),
            roles,
            streams: Mutex::new(HashMap::new()),
        })
    }

    pub fn client(&self) -> &CwlClient {
        &self.client
    }

    fn creds(&self, role_arn: &str) -> Result<&Credentials, DeliveryError> {
        self.roles.get(role_arn).ok_or_else(|| {
            DeliveryError::Access(format!("no credential configured for role {role_arn}"))
        })
    }

    /// Sends one batch (already within limits) to the stream, creating group and stream on
    /// first use and following sequence-token hints.
    pub async fn put(
        &self,
        role_arn: &str,
        key: &StreamKey,
        events: &[&Event],
    ) -> Result<PutOutcome, DeliveryError> {
        let creds = self.creds(role_arn)?;
        let region = self.region.as_deref().unwrap_or(&key.region);
        let mut streams = self.streams.lock().await;
        let state = streams.entry(key.clone()).or_default();
        if !state.created {
            self.client.ensure_group(creds, region, &key.group).await?;
            self.client
                .ensure_stream(creds, region, &key.group, &key.stream)
                .await?;
            state.created = true;
        }
        for _attempt in 0..4 {
            match self
                .client
                .put_log_events(
                    creds,
                    region,
                    &key.group,
                    &key.stream,
                    events,
                    state.token.as_deref(),
                )
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
                Err(CallError::Api(a)) if a.code == "InvalidSequenceTokenException" => {
                    state.token = a.expected_sequence_token;
                }
                Err(CallError::Api(a)) if a.code == "DataAlreadyAcceptedException" => {
                    state.token = a.expected_sequence_token;
                    return Ok(PutOutcome {
                        accepted: events.len() as u64,
                        rejected: 0,
                    });
                }
                Err(CallError::Api(a)) if a.code == "ResourceNotFoundException" => {
                    // Deleted behind our back: create again, then retry.
                    self.client.ensure_group(creds, region, &key.group).await?;
                    self.client
                        .ensure_stream(creds, region, &key.group, &key.stream)
                        .await?;
                    state.token = None;
                }
                Err(e) => {
                    let e = DeliveryError::from(e);
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
