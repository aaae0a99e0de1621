//! A strict in-repo CloudWatch Logs fake for what no emulator enforces: PutLogEvents count,
//! size (26 bytes per event), chronological order and 24-hour span; sequence tokens; credential
//! checks; and injected throttling, 5xx and delays. Any violation is answered with
//! `InvalidParameterException` and recorded so tests can assert there were none.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Throttle,
    ServerError,
}

#[derive(Default)]
pub struct Stream {
    pub events: Vec<(i64, String)>,
    pub token: u64,
}

#[derive(Default)]
pub struct FakeState {
    pub allowed_keys: Vec<String>,
    pub groups: HashMap<String, HashMap<String, Stream>>,
    pub faults: VecDeque<Fault>,
    pub violations: Vec<String>,
    pub puts: u64,
    pub put_delay: Option<Duration>,
    pub max_batch_seen: usize,
}

#[derive(Clone, Default)]
pub struct CwlFake(pub Arc<Mutex<FakeState>>);

fn err(status: StatusCode, code: &str, msg: &str, extra: Option<(&str, Value)>) -> Response {
    let mut body = json!({ "__type": code, "message": msg });
    if let Some((k, v)) = extra {
        body[k] = v;
    }
    (
        status,
        [("content-type", "application/x-amz-json-1.1")],
        body.to_string(),
    )
        .into_response()
}

fn ok(v: Value) -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/x-amz-json-1.1")],
        v.to_string(),
    )
        .into_response()
}

impl CwlFake {
    pub fn new(keys: &[&str]) -> CwlFake {
        let f = CwlFake::default();
        f.0.lock().unwrap().allowed_keys = keys.iter().map(|k| k.to_string()).collect();
        f
    }

    /// Serves on 127.0.0.1:`port` (0 = any) until the task is aborted; returns the URL.
    pub async fn serve(&self, port: u16) -> (String, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .route("/", axum::routing::post(handle))
            .with_state(self.clone());
        let h = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (format!("http://{addr}"), h)
    }

    pub fn events(&self, group: &str, stream: &str) -> Vec<(i64, String)> {
        let st = self.0.lock().unwrap();
        st.groups
            .get(group)
            .and_then(|g| g.get(stream))
            .map(|s| s.events.clone())
            .unwrap_or_default()
    }

    pub fn streams(&self, group: &str) -> Vec<String> {
        let st = self.0.lock().unwrap();
        let mut v: Vec<String> = st
            .groups
            .get(group)
            .map(|g| g.keys().cloned().collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    pub fn inject(&self, f: Fault, times: usize) {
        let mut st = self.0.lock().unwrap();
        for _ in 0..times {
            st.faults.push_back(f);
        }
    }
}

async fn handle(State(fake): State<CwlFake>, headers: HeaderMap, body: Bytes) -> Response {
    let delay = fake.0.lock().unwrap().put_delay;
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if target == "Logs_20140328.PutLogEvents" {
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
    }
    let mut st = fake.0.lock().unwrap();
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let key = auth
        .split("Credential=")
        .nth(1)
        .and_then(|c| c.split('/').next())
        .unwrap_or("");
    let signed_ok = auth.starts_with("AWS4-HMAC-SHA256 ")
        && auth.contains("/logs/aws4_request")
        && auth.contains("x-amz-target")
        && headers.contains_key("x-amz-date");
    if !signed_ok {
        return err(
            StatusCode::BAD_REQUEST,
            "IncompleteSignature",
            "bad signature",
            None,
        );
    }
    if !st.allowed_keys.iter().any(|k| k == key) {
        return err(
            StatusCode::BAD_REQUEST,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
            None,
        );
    }
    if headers.get("content-type").and_then(|v| v.to_str().ok())
        != Some("application/x-amz-json-1.1")
    {
        st.violations.push("wrong content-type".into());
    }
    if let Some(f) = st.faults.pop_front() {
        return match f {
            Fault::Throttle => err(
                StatusCode::BAD_REQUEST,
                "ThrottlingException",
                "Rate exceeded",
                None,
            ),
            Fault::ServerError => err(
                StatusCode::INTERNAL_SERVER_ERROR,
                "ServiceUnavailableException",
                "try later",
                None,
            ),
        };
    }
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return err(
            StatusCode::BAD_REQUEST,
            "SerializationException",
            "bad json",
            None,
        );
    };
    let group = req["logGroupName"].as_str().unwrap_or("").to_string();
    let stream = req["logStreamName"].as_str().unwrap_or("").to_string();
    match target.strip_prefix("Logs_20140328.").unwrap_or("") {
        "CreateLogGroup" => {
            if st.groups.contains_key(&group) {
                return err(
                    StatusCode::BAD_REQUEST,
                    "ResourceAlreadyExistsException",
                    "exists",
                    None,
                );
            }
            st.groups.insert(group, HashMap::new());
            ok(json!({}))
        }
        "CreateLogStream" => {
            let Some(g) = st.groups.get_mut(&group) else {
                return err(
                    StatusCode::BAD_REQUEST,
                    "ResourceNotFoundException",
                    "no group",
                    None,
                );
            };
            if g.contains_key(&stream) {
                return err(
                    StatusCode::BAD_REQUEST,
                    "ResourceAlreadyExistsException",
                    "exists",
                    None,
                );
            }
            g.insert(stream, Stream::default());
            ok(json!({}))
        }
        "PutLogEvents" => put(&mut st, &group, &stream, &req),
        other => err(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            other,
            None,
        ),
    }
}

fn put(st: &mut FakeState, group: &str, stream: &str, req: &Value) -> Response {
    st.puts += 1;
    let events = req["logEvents"].as_array().cloned().unwrap_or_default();
    let mut problems = Vec::new();
    if events.is_empty() || events.len() > 10_000 {
        problems.push(format!("{} events", events.len()));
    }
    let bytes: usize = events
        .iter()
        .map(|e| e["message"].as_str().unwrap_or("").len() + 26)
        .sum();
    if bytes > 1_048_576 {
        problems.push(format!("{bytes} bytes"));
    }
    let ts: Vec<i64> = events
        .iter()
        .map(|e| e["timestamp"].as_i64().unwrap_or(-1))
        .collect();
    if ts.windows(2).any(|w| w[0] > w[1]) {
        problems.push("not chronological".into());
    }
    if let (Some(a), Some(z)) = (ts.first(), ts.last()) {
        if z - a >= 24 * 3600 * 1000 {
            problems.push("spans 24 hours".into());
        }
    }
    st.max_batch_seen = st.max_batch_seen.max(events.len());
    if !problems.is_empty() {
        let msg = problems.join(", ");
        st.violations.push(msg.clone());
        return err(
            StatusCode::BAD_REQUEST,
            "InvalidParameterException",
            &msg,
            None,
        );
    }
    let Some(s) = st.groups.get_mut(group).and_then(|g| g.get_mut(stream)) else {
        return err(
            StatusCode::BAD_REQUEST,
            "ResourceNotFoundException",
            "The specified log stream does not exist.",
            None,
        );
    };
    let expected = (!s.events.is_empty()).then(|| s.token.to_string());
    let given = req["sequenceToken"].as_str().map(String::from);
    if given != expected {
        let tok = expected.clone().map(Value::from).unwrap_or(Value::Null);
        return err(
            StatusCode::BAD_REQUEST,
            "InvalidSequenceTokenException",
            "bad token",
            Some(("expectedSequenceToken", tok)),
        );
    }
    for e in &events {
        s.events.push((
            e["timestamp"].as_i64().unwrap_or(0),
            e["message"].as_str().unwrap_or("").to_string(),
        ));
    }
    s.token += 1;
    ok(json!({ "nextSequenceToken": s.token.to_string() }))
}
