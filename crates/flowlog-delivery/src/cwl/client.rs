//! CloudWatch Logs through the AWS SDK for Rust: the calls delivery makes (CreateLogGroup,
//! CreateLogStream, PutLogEvents) and the reads tests and tools need (GetLogEvents,
//! DescribeLogStreams). A client carries its credentials and region.

use crate::aws::{self, AwsContext};
use crate::config::CwlConfig;
use crate::router::Event;
use crate::DeliveryError;
use aws_config::{Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_cloudwatchlogs::operation::put_log_events::PutLogEventsError;
use aws_sdk_cloudwatchlogs::types::{InputLogEvent, RejectedLogEventsInfo};

/// `rejectedLogEventsInfo` of a PutLogEvents answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rejected {
    pub too_new_start: Option<usize>,
    pub too_old_end: Option<usize>,
    pub expired_end: Option<usize>,
}

impl Rejected {
    fn from_sdk(r: Option<&RejectedLogEventsInfo>) -> Rejected {
        let idx = |v: Option<i32>| v.and_then(|n| usize::try_from(n).ok());
        match r {
            None => Rejected::default(),
            Some(r) => Rejected {
                too_new_start: idx(r.too_new_log_event_start_index()),
                too_old_end: idx(r.too_old_log_event_end_index()),
                expired_end: idx(r.expired_log_event_end_index()),
            },
        }
    }

    /// How many of `n` sent events were rejected.
    pub fn count(&self, n: usize) -> usize {
        let old = self
            .too_old_end
            .unwrap_or(0)
            .max(self.expired_end.unwrap_or(0))
            .min(n);
        let new = n - self.too_new_start.unwrap_or(n).min(n);
        (old + new).min(n)
    }
}

#[derive(Debug, Clone, Default)]
pub struct PutResult {
    pub next_sequence_token: Option<String>,
    pub rejected: Rejected,
}

/// The PutLogEvents answers delivery reacts to, apart from success.
#[derive(Debug)]
pub enum PutError {
    /// An older service (or emulator) still checks sequence tokens: retry with this one.
    InvalidSequenceToken(Option<String>),
    /// The batch was already taken (a retry after a lost answer): success.
    DataAlreadyAccepted(Option<String>),
    /// Group or stream deleted behind our back: create again, then retry.
    NotFound,
    Other(DeliveryError),
}

#[derive(Debug, Clone)]
pub struct CwlClient {
    client: aws_sdk_cloudwatchlogs::Client,
}

impl CwlClient {
    /// A client of `base` in `region`, with `credentials` instead of `base`'s when given (an
    /// assumed role), at `endpoint` when given.
    pub fn new(
        base: &SdkConfig,
        region: &str,
        endpoint: Option<&str>,
        credentials: Option<SharedCredentialsProvider>,
    ) -> CwlClient {
        let mut b = aws_sdk_cloudwatchlogs::config::Builder::from(base)
            .region(Region::new(region.to_string()));
        if let Some(e) = endpoint {
            b = b.endpoint_url(e);
        }
        if let Some(c) = credentials {
            b = b.credentials_provider(c);
        }
        CwlClient {
            client: aws_sdk_cloudwatchlogs::Client::from_conf(b.build()),
        }
    }

    /// For tests and tools: a client of `[cloudwatch_logs]`'s own credentials in `region`.
    pub async fn for_section(cfg: &CwlConfig, region: &str) -> Result<CwlClient, DeliveryError> {
        let ctx = AwsContext::new(None)?;
        let base = ctx.load(&cfg.section(), Some(region)).await?;
        Ok(CwlClient::new(&base, region, cfg.endpoint.as_deref(), None))
    }

    /// CreateLogGroup; an existing group is success.
    pub async fn ensure_group(&self, group: &str) -> Result<(), DeliveryError> {
        match self
            .client
            .create_log_group()
            .log_group_name(group)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_already_exists_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(aws::classify("CloudWatch Logs CreateLogGroup", &e)),
        }
    }

    /// CreateLogStream; an existing stream is success.
    pub async fn ensure_stream(&self, group: &str, stream: &str) -> Result<(), DeliveryError> {
        match self
            .client
            .create_log_stream()
            .log_group_name(group)
            .log_stream_name(stream)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_already_exists_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(aws::classify("CloudWatch Logs CreateLogStream", &e)),
        }
    }

    pub async fn put_log_events(
        &self,
        group: &str,
        stream: &str,
        events: &[&Event],
        sequence_token: Option<&str>,
    ) -> Result<PutResult, PutError> {
        let mut events_in = Vec::with_capacity(events.len());
        for e in events {
            events_in.push(
                InputLogEvent::builder()
                    .timestamp(e.timestamp)
                    .message(e.message.clone())
                    .build()
                    .map_err(|b| PutError::Other(DeliveryError::Config(b.to_string())))?,
            );
        }
        let res = self
            .client
            .put_log_events()
            .log_group_name(group)
            .log_stream_name(stream)
            .set_log_events(Some(events_in))
            .set_sequence_token(sequence_token.map(str::to_string))
            .send()
            .await;
        match res {
            Ok(out) => Ok(PutResult {
                next_sequence_token: out.next_sequence_token().map(str::to_string),
                rejected: Rejected::from_sdk(out.rejected_log_events_info()),
            }),
            Err(e) => Err(match e.as_service_error() {
                Some(PutLogEventsError::InvalidSequenceTokenException(t)) => {
                    PutError::InvalidSequenceToken(t.expected_sequence_token().map(str::to_string))
                }
                Some(PutLogEventsError::DataAlreadyAcceptedException(t)) => {
                    PutError::DataAlreadyAccepted(t.expected_sequence_token().map(str::to_string))
                }
                Some(PutLogEventsError::ResourceNotFoundException(_)) => PutError::NotFound,
                _ => PutError::Other(aws::classify("CloudWatch Logs PutLogEvents", &e)),
            }),
        }
    }

    /// All events of a stream, oldest first (GetLogEvents with `startFromHead`, paged).
    pub async fn get_log_events(
        &self,
        group: &str,
        stream: &str,
    ) -> Result<Vec<Event>, DeliveryError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let v = self
                .client
                .get_log_events()
                .log_group_name(group)
                .log_stream_name(stream)
                .start_from_head(true)
                .set_next_token(token.clone())
                .send()
                .await
                .map_err(|e| aws::classify("CloudWatch Logs GetLogEvents", &e))?;
            let n = v.events().len();
            out.extend(v.events().iter().map(|e| Event {
                timestamp: e.timestamp().unwrap_or_default(),
                message: e.message().unwrap_or_default().to_string(),
            }));
            let next = v.next_forward_token().map(str::to_string);
            if n == 0 || next.is_none() || next == token {
                return Ok(out);
            }
            token = next;
        }
    }

    /// Stream names of a group (DescribeLogStreams, paged).
    pub async fn stream_names(&self, group: &str) -> Result<Vec<String>, DeliveryError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let v = self
                .client
                .describe_log_streams()
                .log_group_name(group)
                .set_next_token(token.clone())
                .send()
                .await
                .map_err(|e| aws::classify("CloudWatch Logs DescribeLogStreams", &e))?;
            out.extend(
                v.log_streams()
                    .iter()
                    .filter_map(|s| s.log_stream_name().map(str::to_string)),
            );
            token = v.next_token().map(str::to_string);
            if token.is_none() {
                return Ok(out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejected_counts() {
        assert_eq!(Rejected::default().count(10), 0);
        let r = Rejected {
            too_new_start: Some(8),
            too_old_end: Some(2),
            expired_end: Some(3),
        };
        assert_eq!(r.count(10), 5);
        let r = Rejected {
            too_new_start: Some(0),
            too_old_end: None,
            expired_end: None,
        };
        assert_eq!(r.count(4), 4);
    }
}
