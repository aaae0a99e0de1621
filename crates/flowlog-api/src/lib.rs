//! The EC2 Query API of flowlog: one entry point, [`Api::handle`], that takes the parts of an
//! HTTP request and returns status, content type and body. Inside it a request is decoded
//! (`query`), authenticated (`sigv4`), authorized (`policy`), dispatched to one of the
//! actions in `action/` (each with its parameter schema, validation, DryRun point and XML
//! rendering) and every failure is mapped to the EC2 error envelope in one place (`error`).
//!
//! The API knows nothing about HTTP servers or packets: `flowlog serve` adapts axum to it,
//! and state lives behind `flowlog_store::Store`.

pub mod action;
pub mod error;
pub mod policy;
pub mod query;
pub mod sigv4;
pub mod wildcard;
pub mod xml;

use std::sync::Arc;

use flowlog_store::Store;

pub use error::ApiError;

/// Largest request body we read. The biggest legal request (CreateFlowLogs with 1001 IDs and
/// tags) is far smaller; anything above is refused with a clear 413 before parsing.
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// One credential allowed to call the API. `Debug` leaves the secret out.
#[derive(Clone)]
pub struct Credential {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub account_id: String,
    /// IAM-style action patterns (`ec2:*`, `ec2:Describe*`).
    pub allow: Vec<String>,
    /// Host names an agent with this credential may sync as; `None`: any host.
    pub hosts: Option<Vec<String>>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("account_id", &self.account_id)
            .field("allow", &self.allow)
            .field("hosts", &self.hosts)
            .finish()
    }
}

/// What CreateFlowLogs may ask about an S3 bucket before accepting it (spec §3.1 rule 21).
pub trait BucketCheck: Send + Sync {
    /// `prefix`: the flow log's subfolder (no leading or trailing `/`; empty for none), under
    /// which the folder marker goes.
    fn check(&self, bucket: &str, prefix: &str) -> BucketStatus;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BucketStatus {
    Writable,
    Missing,
    AccessDenied,
    /// The S3 endpoint could not be asked; the request is answered 503 so clients retry.
    Unavailable(String),
}

/// Settings of the API layer.
#[derive(Clone)]
pub struct ApiConfig {
    pub region: String,
    pub credentials: Vec<Credential>,
    /// Flow logs allowed per VPC, subnet or ENI (2 in 2018; None lifts the limit).
    pub max_flow_logs_per_resource: Option<u32>,
}

/// The API service: configuration, store and optional bucket checker.
pub struct Api {
    pub config: ApiConfig,
    pub store: Arc<dyn Store>,
    pub buckets: Option<Arc<dyn BucketCheck>>,
}

/// The parts of an HTTP request the API needs.
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
    /// Unix seconds, for signature freshness.
    pub now: i64,
}

/// What to send back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: String,
    pub request_id: String,
    /// The action that ran, for logs and metrics ("-" when unknown).
    pub action: String,
    pub error_code: Option<String>,
}

pub const CONTENT_TYPE: &str = "text/xml;charset=UTF-8";

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub access_key_id: String,
    pub account_id: String,
    pub allow: Vec<String>,
    /// Host names this caller may sync as (agent sync); `None`: any.
    pub hosts: Option<Vec<String>>,
}

impl Caller {
    /// May this caller report inventory and status as agent `host`?
    pub fn may_sync_as(&self, host: &str) -> bool {
        self.hosts
            .as_ref()
            .is_none_or(|hs| hs.iter().any(|h| h == host))
    }
}

impl Api {
    pub fn handle(&self, req: &Request<'_>) -> Response {
        let request_id = uuid::Uuid::new_v4().to_string();
        let mut action_name = "-".to_string();
        let result = self.handle_inner(req, &request_id, &mut action_name);
        match result {
            Ok(body) => Response {
                status: 200,
                body,
                request_id,
                action: action_name,
                error_code: None,
            },
            Err(e) => Response {
                status: e.status,
                body: xml::error_body(&e, &request_id),
                request_id,
                action: action_name,
                error_code: Some(e.code),
            },
        }
    }

    fn handle_inner(
        &self,
        req: &Request<'_>,
        request_id: &str,
        action_name: &mut String,
    ) -> Result<String, ApiError> {
        if req.body.len() > MAX_BODY_BYTES {
            return Err(too_large());
        }
        if req.method != "GET" && req.method != "POST" {
            return Err(ApiError::bad_request(
                "InvalidHttpRequest",
                format!(
                    "The HTTP method {} is not supported; use POST or GET.",
                    req.method
                ),
            ));
        }
        let mut params = query::decode(req.query.as_bytes()).map_err(malformed)?;
        if req.method == "POST" {
            params.extend_from(req.body).map_err(malformed)?;
        }

        let caller = self.authenticate(req)?;

        let name = params.get("Action").unwrap_or_default().to_string();
        *action_name = name.clone();
        let action = action::Action::from_name(&name).ok_or_else(|| {
            if name.is_empty() {
                ApiError::missing("Action")
            } else {
                ApiError::bad_request(
                    "InvalidAction",
                    format!("The action {name} is not valid for this web service."),
                )
            }
        })?;
        match params.get("Version") {
            None => return Err(ApiError::missing("Version")),
            Some("2016-11-15") => {}
            Some(v) => {
                return Err(ApiError::bad_request(
                    "InvalidParameterValue",
                    format!("Value ({v}) for parameter Version is invalid. This server implements 2016-11-15."),
                ))
            }
        }
        if !policy::allows(&caller.allow, &format!("ec2:{name}")) {
            return Err(ApiError::unauthorized());
        }
        let ctx = action::Ctx {
            api: self,
            caller: &caller,
            params: &params,
            request_id,
        };
        action.run(&ctx)
    }

    /// Checks the signature of a request whose body has not been read yet, where the
    /// request allows it (header form with `x-amz-content-sha256`): `Ok(false)` when it cannot
    /// be decided before the body is in, `Ok(true)` when the head is proven. [`Api::authenticate`]
    /// must still run on the whole request.
    pub fn authenticate_head(&self, req: &Request<'_>) -> Result<bool, ApiError> {
        let signed = sigv4::SignedRequest {
            method: req.method,
            path: req.path,
            query: req.query,
            headers: req.headers,
            body: &[],
        };
        sigv4::verify_head(&signed, &self.config.region, req.now, |k| self.secret_of(k))
            .map(|v| v.is_some())
            .map_err(|e| ApiError::auth_failure(e.to_string()))
    }

    fn secret_of(&self, key: &str) -> Option<String> {
        self.config
            .credentials
            .iter()
            .find(|c| c.access_key_id == key)
            .map(|c| c.secret_access_key.clone())
    }

    /// Checks the SigV4 signature of `req` against the configured credentials.
    pub fn authenticate(&self, req: &Request<'_>) -> Result<Caller, ApiError> {
        let signed = sigv4::SignedRequest {
            method: req.method,
            path: req.path,
            query: req.query,
            headers: req.headers,
            body: req.body,
        };
        let v = sigv4::verify(&signed, &self.config.region, req.now, |k| self.secret_of(k))
            .map_err(|e| ApiError::auth_failure(e.to_string()))?;
        let cred = self
            .config
            .credentials
            .iter()
            .find(|c| c.access_key_id == v.access_key_id)
            .ok_or_else(|| {
                ApiError::auth_failure(
                    "AWS was not able to validate the provided access credentials",
                )
            })?;
        Ok(Caller {
            access_key_id: cred.access_key_id.clone(),
            account_id: cred.account_id.clone(),
            allow: cred.allow.clone(),
            hosts: cred.hosts.clone(),
        })
    }
}

fn too_large() -> ApiError {
    ApiError::new(
        413,
        "RequestEntityTooLarge",
        format!("The request body is larger than the limit of {MAX_BODY_BYTES} bytes."),
    )
}

fn malformed(e: query::DecodeError) -> ApiError {
    match e {
        query::DecodeError::TooMany => {
            ApiError::bad_request("InvalidParameterValue", e.to_string())
        }
        _ => ApiError::bad_request(
            "MalformedQueryString",
            format!("The query string is malformed: {e}."),
        ),
    }
}

pub use flowlog_model::timefmt::iso8601_ms;

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
