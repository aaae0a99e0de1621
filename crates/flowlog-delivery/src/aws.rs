//! Everything flowlog needs to call AWS services (S3, CloudWatch Logs, Firehose, STS) with the
//! credentials a host already has: one HTTPS client (rustls on ring, the system's roots plus
//! `AWS_CA_BUNDLE`), one [`SdkConfig`] per config section (the AWS default chain, a named
//! profile, or the section's static keys), roles assumed through STS and cached, and the
//! mapping of SDK errors onto [`DeliveryError`].
//!
//! Endpoints are applied per client ([`Section::endpoint`] first, then what the SDK reads from
//! `AWS_ENDPOINT_URL_<SERVICE>`, `AWS_ENDPOINT_URL` and the profile), never on the shared
//! `SdkConfig`, so the S3 endpoint never leaks into the STS client that assumes roles.

use crate::config::StsConfig;
use crate::DeliveryError;
use aws_config::sts::AssumeRoleProvider;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::Mutex;

/// Region used when neither the section, the environment nor the profile names one.
pub const FALLBACK_REGION: &str = "us-east-1";

/// The credential and endpoint settings of one config section (`[s3]`, `[cloudwatch_logs]`,
/// `[firehose]`): borrowed views so the sections keep their own `deny_unknown_fields` structs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Section<'a> {
    /// Which section, for error messages (`s3`, `cloudwatch_logs`, `firehose`).
    pub name: &'a str,
    pub endpoint: Option<&'a str>,
    pub region: Option<&'a str>,
    pub profile: Option<&'a str>,
    pub access_key_id: Option<&'a str>,
    pub secret_access_key: Option<&'a str>,
    pub session_token: Option<&'a str>,
}

impl Section<'_> {
    /// Static keys, when the section has both halves; one half alone is a config error.
    fn static_credentials(&self) -> Result<Option<Credentials>, DeliveryError> {
        match (self.access_key_id, self.secret_access_key) {
            (Some(ak), Some(sk)) => Ok(Some(Credentials::new(
                ak,
                sk,
                self.session_token.map(str::to_string),
                None,
                "flowlog-config",
            ))),
            (None, None) => Ok(None),
            _ => Err(DeliveryError::Config(format!(
                "[{}]: access_key_id and secret_access_key go together; set both, or neither to \
                 use the AWS credential chain (environment, profile, web identity, ECS, IMDS)",
                self.name
            ))),
        }
    }
}

/// Shared by every AWS client flowlog builds.
pub struct AwsContext {
    http: SharedHttpClient,
    sts: StsConfig,
    /// Assumed-role credential providers, one per (role, region, session name). Each provider
    /// caches its temporary credentials and renews them before they expire.
    roles: Mutex<HashMap<(String, String, String), SharedCredentialsProvider>>,
}

impl AwsContext {
    /// `sts`: the `[sts]` section (endpoint and region of the STS calls that assume roles).
    pub fn new(sts: Option<&StsConfig>) -> Result<AwsContext, DeliveryError> {
        Ok(AwsContext {
            http: https_client()?,
            sts: sts.cloned().unwrap_or_default(),
            roles: Mutex::new(HashMap::new()),
        })
    }

    /// The SDK configuration of one section: its static keys, else its profile's chain, else
    /// the default chain; its region, else `region_hint` (the flow log's region, where the
    /// destination is known to be), else the chain's, else [`FALLBACK_REGION`]. No endpoint
    /// (see the module doc).
    pub async fn load(
        &self,
        s: &Section<'_>,
        region_hint: Option<&str>,
    ) -> Result<SdkConfig, DeliveryError> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(self.http.clone())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(Duration::from_secs(60))
                    .operation_timeout(Duration::from_secs(120))
                    .build(),
            );
        if let Some(p) = s.profile {
            loader = loader.profile_name(p);
        }
        if let Some(r) = s.region.or(region_hint) {
            loader = loader.region(Region::new(r.to_string()));
        }
        if let Some(c) = s.static_credentials()? {
            loader = loader.credentials_provider(c);
        }
        let conf = loader.load().await;
        if conf.region().is_some() {
            return Ok(conf);
        }
        Ok(conf
            .into_builder()
            .region(Region::from_static(FALLBACK_REGION))
            .build())
    }

    /// Credentials of `role_arn`, assumed with `base`'s credentials through STS (`[sts]`
    /// endpoint, else `AWS_ENDPOINT_URL_STS` / `AWS_ENDPOINT_URL`, else AWS) as session
    /// `session`; cached per (role, region, session) and renewed before expiry.
    pub async fn assumed(
        &self,
        base: &SdkConfig,
        role_arn: &str,
        session: &str,
    ) -> SharedCredentialsProvider {
        let region = self
            .sts
            .region
            .clone()
            .or_else(|| base.region().map(|r| r.to_string()))
            .unwrap_or_else(|| FALLBACK_REGION.to_string());
        let key = (role_arn.to_string(), region.clone(), session.to_string());
        let mut roles = self.roles.lock().await;
        if let Some(p) = roles.get(&key) {
            return p.clone();
        }
        let mut sts = base.clone().into_builder();
        if let Some(e) = &self.sts.endpoint {
            sts = sts.endpoint_url(e.clone());
        }
        let provider = AssumeRoleProvider::builder(role_arn)
            .session_name(session)
            .region(Region::new(region))
            .configure(&sts.build())
            .build()
            .await;
        let provider = SharedCredentialsProvider::new(provider);
        roles.insert(key, provider.clone());
        provider
    }
}

/// A valid STS role session name naming the flow log: `flowlog-<id>`, at most 64 characters
/// of `[\w+=,.@-]`.
pub fn session_name(flow_log_id: &str) -> String {
    let mut s: String = format!("flowlog-{flow_log_id}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    s.truncate(64);
    s
}

/// The HTTPS client of every AWS call: rustls with ring (no aws-lc build), the system's roots,
/// and the PEM bundle named by `AWS_CA_BUNDLE` when set (the standard AWS setting for private
/// CAs and TLS-inspecting proxies).
fn https_client() -> Result<SharedHttpClient, DeliveryError> {
    use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};
    let mut trust = TrustStore::default().with_native_roots(true);
    if let Some(path) = std::env::var_os("AWS_CA_BUNDLE").filter(|p| !p.is_empty()) {
        let pem = std::fs::read(&path).map_err(|e| {
            DeliveryError::Config(format!(
                "AWS_CA_BUNDLE={}: cannot read the CA bundle: {e}",
                std::path::Path::new(&path).display()
            ))
        })?;
        trust = trust.with_pem_certificate(pem);
    }
    let ctx = TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .map_err(|e| DeliveryError::Config(format!("TLS setup for AWS calls: {e}")))?;
    Ok(aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .tls_context(ctx)
        .build_https())
}

/// Error codes that mean "these credentials may not do this" across S3, CloudWatch Logs,
/// Firehose and STS.
const ACCESS_CODES: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidSignatureException",
    "IncompleteSignature",
    "MissingAuthenticationToken",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidToken",
    "AuthorizationHeaderMalformed",
];

const THROTTLE_CODES: &[&str] = &[
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "LimitExceededException",
    "ServiceQuotaExceededException",
];

/// Maps any SDK error to our kinds. `what` names the call for the message.
pub fn classify<E>(what: &str, err: &SdkError<E, HttpResponse>) -> DeliveryError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let full = aws_smithy_types::error::display::DisplayErrorContext(err).to_string();
    let msg = format!("{what}: {full}");
    match err {
        SdkError::ServiceError(ctx) => {
            let status = ctx.raw().status().as_u16();
            let code = ctx.err().code().unwrap_or_default();
            classify_code(status, code, msg)
        }
        SdkError::ResponseError(ctx) => classify_code(ctx.raw().status().as_u16(), "", msg),
        SdkError::TimeoutError(_) => DeliveryError::Transport(msg),
        SdkError::DispatchFailure(d) if d.is_timeout() || d.is_io() => {
            DeliveryError::Transport(msg)
        }
        // Credentials could not be resolved or a role could not be assumed: AWS reports the
        // delivery as an access error. The STS refusal itself is in the message.
        _ if is_credentials_error(&full) => DeliveryError::Access(msg),
        SdkError::DispatchFailure(_) => DeliveryError::Transport(msg),
        _ => DeliveryError::Server(msg),
    }
}

fn classify_code(status: u16, code: &str, msg: String) -> DeliveryError {
    if THROTTLE_CODES.contains(&code) || status == 429 {
        DeliveryError::Throttled(msg)
    } else if ACCESS_CODES.contains(&code) || status == 401 || status == 403 {
        DeliveryError::Access(msg)
    } else if status >= 500 {
        DeliveryError::Server(msg)
    } else {
        DeliveryError::Rejected(msg)
    }
}

fn is_credentials_error(text: &str) -> bool {
    ACCESS_CODES.iter().any(|c| text.contains(c))
        || text.contains("failed to load credentials")
        || text.contains("no credentials")
        || text.contains("identity")
        || text.contains("credentials")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_names_are_valid() {
        assert_eq!(session_name("fl-0123abcd"), "flowlog-fl-0123abcd");
        let long = session_name(&"x".repeat(100));
        assert_eq!(long.len(), 64);
        assert_eq!(session_name("fl/1 2"), "flowlog-fl-1-2");
    }

    #[test]
    fn codes_are_classified() {
        assert!(matches!(
            classify_code(403, "AccessDenied", String::new()),
            DeliveryError::Access(_)
        ));
        assert!(matches!(
            classify_code(400, "ThrottlingException", String::new()),
            DeliveryError::Throttled(_)
        ));
        assert!(matches!(
            classify_code(503, "SlowDown", String::new()),
            DeliveryError::Throttled(_)
        ));
        assert!(matches!(
            classify_code(502, "", String::new()),
            DeliveryError::Server(_)
        ));
        assert!(matches!(
            classify_code(404, "NoSuchBucket", String::new()),
            DeliveryError::Rejected(_)
        ));
        assert!(matches!(
            classify_code(400, "UnrecognizedClientException", String::new()),
            DeliveryError::Access(_)
        ));
    }

    #[test]
    fn half_a_key_pair_is_an_error() {
        let s = Section {
            name: "s3",
            access_key_id: Some("AKID"),
            ..Section::default()
        };
        let e = s.static_credentials().unwrap_err().to_string();
        assert!(e.contains("[s3]") && e.contains("secret_access_key"), "{e}");
    }
}
