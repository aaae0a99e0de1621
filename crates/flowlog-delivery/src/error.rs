//! Delivery errors and how they map to the `DeliverLogsErrorMessage` AWS shows
//! (`Access error`, `Rate limited`, `Unknown error`; spec §6). The mapping lives here only.

/// Why a delivery attempt failed, as reported through DescribeFlowLogs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    AccessError,
    RateLimited,
    Unknown,
}

impl FailureKind {
    /// `DeliverLogsErrorMessage` exactly as AWS spells it.
    pub fn message(self) -> &'static str {
        match self {
            FailureKind::AccessError => "Access error",
            FailureKind::RateLimited => "Rate limited",
            FailureKind::Unknown => "Unknown error",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// 403, bad keys, bad signature, or a role with no configured credential.
    #[error("access denied: {0}")]
    Access(String),
    /// 429 / 503 SlowDown / ThrottlingException.
    #[error("throttled: {0}")]
    Throttled(String),
    /// 5xx or a response we could not understand.
    #[error("server error: {0}")]
    Server(String),
    /// Connection refused, timeout, DNS.
    #[error("transport error: {0}")]
    Transport(String),
    /// A 4xx the destination gives for this request (missing bucket, bad parameter).
    #[error("request rejected: {0}")]
    Rejected(String),
    #[error("spool io: {0}")]
    Io(#[from] std::io::Error),
    #[error("local log store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("configuration: {0}")]
    Config(String),
}

impl DeliveryError {
    pub fn kind(&self) -> FailureKind {
        match self {
            DeliveryError::Access(_) => FailureKind::AccessError,
            DeliveryError::Throttled(_) => FailureKind::RateLimited,
            _ => FailureKind::Unknown,
        }
    }
}
