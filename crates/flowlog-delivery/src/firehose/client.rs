//! [`RemoteFirehose`]: PutRecordBatch through `aws-sdk-firehose`, one client per (roles,
//! region, session) so each keeps its own cached credentials.
//!
//! Credentials, as AWS delivers Firehose flow logs: a flow log without a role (same account)
//! uses the `[firehose]` section's credentials (static keys, profile or the default chain); with
//! `DeliverLogsPermissionArn` that role is assumed through STS with them (session
//! `flowlog-<fl-id>`); with `DeliverCrossAccountRole` too (cross-account), the permission role's
//! credentials then assume the cross-account role, which is what writes to the stream.

use super::{FailedRecord, PutFuture, PutRecords, StreamRef};
use crate::aws::{self, AwsContext};
use crate::config::FirehoseConfig;
use crate::DeliveryError;
use aws_config::{Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_firehose::error::ProvideErrorMetadata;
use aws_sdk_firehose::types::Record;
use aws_smithy_types::Blob;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{Mutex, OnceCell};

type ClientKey = (Option<String>, Option<String>, String, String);

pub struct RemoteFirehose {
    ctx: Arc<AwsContext>,
    cfg: FirehoseConfig,
    base: OnceCell<SdkConfig>,
    clients: Mutex<HashMap<ClientKey, aws_sdk_firehose::Client>>,
}

impl RemoteFirehose {
    pub fn new(ctx: Arc<AwsContext>, cfg: &FirehoseConfig) -> RemoteFirehose {
        RemoteFirehose {
            ctx,
            cfg: cfg.clone(),
            base: OnceCell::new(),
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// The client for one stream and flow log: region from `[firehose] region`, else the
    /// stream's (its ARN); credentials as the module doc says.
    async fn client(&self, to: &StreamRef) -> Result<aws_sdk_firehose::Client, DeliveryError> {
        let region = self.cfg.region.clone().unwrap_or_else(|| to.region.clone());
        let base = self
            .base
            .get_or_try_init(|| async { self.ctx.load(&self.cfg.section(), Some(&region)).await })
            .await?;
        let session = aws::session_name(&to.flow_log_id);
        let key = (
            to.role_arn.clone(),
            to.cross_account_role.clone(),
            region.clone(),
            session.clone(),
        );
        let mut clients = self.clients.lock().await;
        if let Some(c) = clients.get(&key) {
            return Ok(c.clone());
        }
        let mut creds: Option<SharedCredentialsProvider> = None;
        if let Some(role) = &to.role_arn {
            creds = Some(self.ctx.assumed(base, role, &session).await);
        }
        if let Some(cross) = &to.cross_account_role {
            // The permission role's credentials assume the stream account's role.
            let mut b = base.clone().into_builder();
            if let Some(c) = creds.take() {
                b = b.credentials_provider(c);
            }
            creds = Some(self.ctx.assumed(&b.build(), cross, &session).await);
        }
        let mut b = aws_sdk_firehose::config::Builder::from(base).region(Region::new(region));
        if let Some(e) = &self.cfg.endpoint {
            b = b.endpoint_url(e);
        }
        if let Some(c) = creds {
            b = b.credentials_provider(c);
        }
        let c = aws_sdk_firehose::Client::from_conf(b.build());
        clients.insert(key, c.clone());
        Ok(c)
    }

    async fn put(
        &self,
        to: &StreamRef,
        records: Vec<Vec<u8>>,
    ) -> Result<Vec<FailedRecord>, DeliveryError> {
        let client = self.client(to).await?;
        let n = records.len();
        let records = records
            .into_iter()
            .map(|d| Record::builder().data(Blob::new(d)).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| DeliveryError::Config(format!("Firehose record: {e}")))?;
        let out = client
            .put_record_batch()
            .delivery_stream_name(&to.stream_name)
            .set_records(Some(records))
            .send()
            .await
            .map_err(|e| match e.code() {
                // Over the stream's throughput: what AWS reports as `Rate limited`.
                Some("ServiceUnavailableException") => DeliveryError::Throttled(format!(
                    "Firehose PutRecordBatch: {}",
                    e.message().unwrap_or("ServiceUnavailableException")
                )),
                _ => aws::classify("Firehose PutRecordBatch", &e),
            })?;
        if out.failed_put_count() == 0 {
            return Ok(Vec::new());
        }
        let answers = out.request_responses();
        if answers.len() != n {
            return Err(DeliveryError::Server(format!(
                "Firehose PutRecordBatch: FailedPutCount {} with {} RequestResponses for {n} records",
                out.failed_put_count(),
                answers.len()
            )));
        }
        let failed: Vec<FailedRecord> = answers
            .iter()
            .enumerate()
            .filter_map(|(index, r)| {
                r.error_code().map(|code| FailedRecord {
                    index,
                    code: code.to_string(),
                    message: r.error_message().unwrap_or_default().to_string(),
                })
            })
            .collect();
        if failed.is_empty() {
            return Err(DeliveryError::Server(format!(
                "Firehose PutRecordBatch: FailedPutCount {} but no record has an ErrorCode",
                out.failed_put_count()
            )));
        }
        Ok(failed)
    }
}

impl PutRecords for RemoteFirehose {
    fn put_record_batch<'a>(&'a self, to: &'a StreamRef, records: Vec<Vec<u8>>) -> PutFuture<'a> {
        Box::pin(self.put(to, records))
    }
}
