//! A CloudWatch Logs client speaking the JSON 1.1 protocol (`X-Amz-Target:
//! Logs_20140328.<Action>`, `Content-Type: application/x-amz-json-1.1`), signed with SigV4 for
//! service `logs`. Only the calls delivery and its tests need.

use crate::router::Event;
use crate::sigv4::{self, Credentials};
use crate::DeliveryError;
use reqwest::Url;
use serde_json::{json, Value};
use std::time::Duration;
use time::OffsetDateTime;

/// An error answered by the service (`__type` without its namespace prefix).
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub expected_sequence_token: Option<String>,
}

#[derive(Debug)]
pub enum CallError {
    Api(ApiError),
    Transport(String),
}

impl From<CallError> for DeliveryError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Transport(m) => DeliveryError::Transport(m),
            CallError::Api(a) => {
                let msg = format!("{} (HTTP {}): {}", a.code, a.status, a.message);
                match a.code.as_str() {
                    "ThrottlingException"
                    | "LimitExceededException"
                    | "ServiceQuotaExceededException" => DeliveryError::Throttled(msg),
                    "AccessDeniedException"
                    | "UnrecognizedClientException"
                    | "InvalidSignatureException"
                    | "IncompleteSignature"
                    | "MissingAuthenticationToken"
                    | "ExpiredTokenException" => DeliveryError::Access(msg),
                    _ if a.status == 429 => DeliveryError::Throttled(msg),
                    _ if a.status == 401 || a.status == 403 => DeliveryError::Access(msg),
                    _ if a.status >= 500 => DeliveryError::Server(msg),
                    _ => DeliveryError::Rejected(msg),
                }
            }
        }
    }
}

/// `rejectedLogEventsInfo` of a PutLogEvents answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rejected {
    pub too_new_start: Option<usize>,
    pub too_old_end: Option<usize>,
    pub expired_end: Option<usize>,
}

impl Rejected {
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

#[derive(Debug, Clone)]
pub struct CwlClient {
    http: reqwest::Client,
    endpoint: Url,
    host: String,
}

impl CwlClient {
    pub fn new(endpoint: &str) -> Result<CwlClient, DeliveryError> {
        let url = Url::parse(endpoint).map_err(|e| {
            DeliveryError::Config(format!("cloudwatch_logs.endpoint {endpoint:?}: {e}"))
        })?;
        let host = match url.port() {
            Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_string(),
        };
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| DeliveryError::Config(e.to_string()))?;
        Ok(CwlClient {
            http,
            endpoint: url,
            host,
        })
    }

    /// One call; `action` without the `Logs_20140328.` prefix.
    pub async fn call(
        &self,
        creds: &Credentials,
        region: &str,
        action: &str,
        body: &Value,
    ) -> Result<Value, CallError> {
        let body = serde_json::to_vec(body).expect("JSON values serialise");
        let target = format!("Logs_20140328.{action}");
        let payload = sigv4::sha256_hex(&body);
        let path = if self.endpoint.path().is_empty() {
            "/"
        } else {
            self.endpoint.path()
        };
        let headers = [
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", target.as_str()),
        ];
        let req = sigv4::Request {
            method: "POST",
            host: &self.host,
            path,
            query: &[],
            headers: &headers,
            payload_sha256: &payload,
        };
        let mut rb = self.http.post(self.endpoint.clone());
        for (k, v) in headers {
            rb = rb.header(k, v);
        }
        for (k, v) in sigv4::sign(&req, creds, region, "logs", OffsetDateTime::now_utc()) {
            rb = rb.header(k, v);
        }
        let resp = rb
            .body(body)
            .send()
            .await
            .map_err(|e| CallError::Transport(e.to_string()))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| CallError::Transport(e.to_string()))?;
        let value: Value = if bytes.is_empty() {
            json!({})
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        if (200..300).contains(&status) {
            return Ok(value);
        }
        let code = value
            .get("__type")
            .and_then(Value::as_str)
            .map(|t| t.rsplit('#').next().unwrap_or(t).to_string())
            .unwrap_or_else(|| format!("HTTP{status}"));
        let message = value
            .get("message")
            .or_else(|| value.get("Message"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let expected_sequence_token = value
            .get("expectedSequenceToken")
            .and_then(Value::as_str)
            .map(String::from);
        Err(CallError::Api(ApiError {
            status,
            code,
            message,
            expected_sequence_token,
        }))
    }

    /// CreateLogGroup; an existing group is success.
    pub async fn ensure_group(
        &self,
        creds: &Credentials,
        region: &str,
        group: &str,
    ) -> Result<(), CallError> {
        match self
            .call(
                creds,
                region,
                "CreateLogGroup",
                &json!({ "logGroupName": group }),
            )
            .await
        {
            Err(CallError::Api(a)) if a.code == "ResourceAlreadyExistsException" => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// CreateLogStream; an existing stream is success.
    pub async fn ensure_stream(
        &self,
        creds: &Credentials,
        region: &str,
        group: &str,
        stream: &str,
    ) -> Result<(), CallError> {
        let body = json!({ "logGroupName": group, "logStreamName": stream });
        match self.call(creds, region, "CreateLogStream", &body).await {
            Err(CallError::Api(a)) if a.code == "ResourceAlreadyExistsException" => Ok(()),
            other => other.map(|_| ()),
        }
    }

    pub async fn put_log_events(
        &self,
        creds: &Credentials,
        region: &str,
        group: &str,
        stream: &str,
        events: &[&Event],
        sequence_token: Option<&str>,
    ) -> Result<PutResult, CallError> {
        let mut body = json!({
            "logGroupName": group,
            "logStreamName": stream,
            "logEvents": events.iter().map(|e| json!({"timestamp": e.timestamp, "message": e.message})).collect::<Vec<_>>(),
        });
        if let Some(t) = sequence_token {
            body["sequenceToken"] = json!(t);
        }
        let v = self.call(creds, region, "PutLogEvents", &body).await?;
        let idx = |k: &str| {
            v.get("rejectedLogEventsInfo")
                .and_then(|r| r.get(k))
                .and_then(Value::as_u64)
                .map(|n| n as usize)
        };
        Ok(PutResult {
            next_sequence_token: v
                .get("nextSequenceToken")
                .and_then(Value::as_str)
                .map(String::from),
            rejected: Rejected {
                too_new_start: idx("tooNewLogEventStartIndex"),
                too_old_end: idx("tooOldLogEventEndIndex"),
                expired_end: idx("expiredLogEventEndIndex"),
            },
        })
    }

    /// All events of a stream, oldest first (GetLogEvents with `startFromHead`, paged).
    pub async fn get_log_events(
        &self,
        creds: &Credentials,
        region: &str,
        group: &str,
        stream: &str,
    ) -> Result<Vec<Event>, CallError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut body =
                json!({ "logGroupName": group, "logStreamName": stream, "startFromHead": true });
            if let Some(t) = &token {
                body["nextToken"] = json!(t);
            }
            let v = self.call(creds, region, "GetLogEvents", &body).await?;
            let events = v
                .get("events")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let n = events.len();
            for e in events {
                out.push(Event {
                    timestamp: e
                        .get("timestamp")
                        .and_then(Value::as_i64)
                        .unwrap_or_default(),
                    message: e
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                });
            }
            let next = v
                .get("nextForwardToken")
                .and_then(Value::as_str)
                .map(String::from);
            if n == 0 || next.is_none() || next == token {
                return Ok(out);
            }
            token = next;
        }
    }

    /// Stream names of a group (DescribeLogStreams, paged).
    pub async fn stream_names(
        &self,
        creds: &Credentials,
        region: &str,
        group: &str,
    ) -> Result<Vec<String>, CallError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut body = json!({ "logGroupName": group });
            if let Some(t) = &token {
                body["nextToken"] = json!(t);
            }
            let v = self
                .call(creds, region, "DescribeLogStreams", &body)
                .await?;
            for s in v
                .get("logStreams")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
            {
                if let Some(n) = s.get("logStreamName").and_then(Value::as_str) {
                    out.push(n.to_string());
                }
            }
            token = v.get("nextToken").and_then(Value::as_str).map(String::from);
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

    #[test]
    fn api_errors_map_to_status_messages() {
        let api = |code: &str, status| {
            CallError::Api(ApiError {
                status,
                code: code.into(),
                message: String::new(),
                expected_sequence_token: None,
            })
        };
        assert_eq!(
            DeliveryError::from(api("ThrottlingException", 400))
                .kind()
                .message(),
            "Rate limited"
        );
        assert_eq!(
            DeliveryError::from(api("AccessDeniedException", 400))
                .kind()
                .message(),
            "Access error"
        );
        assert_eq!(
            DeliveryError::from(api("UnrecognizedClientException", 400))
                .kind()
                .message(),
            "Access error"
        );
        assert_eq!(
            DeliveryError::from(api("ServiceUnavailableException", 503))
                .kind()
                .message(),
            "Unknown error"
        );
    }
}
