//! The one error type of the API layer and its mapping to the wire: an EC2 error code, a
//! message and an HTTP status. Every failure of a request ends here; the XML envelope is
//! rendered by `xml::error_body`.

use flowlog_store::StoreError;

/// A request-level failure, answered with the `<Response><Errors>` envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, code: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code: code.into(),
            message: message.into(),
        }
    }

    pub fn bad_request(code: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(400, code, message)
    }

    pub fn missing(name: &str) -> ApiError {
        ApiError::bad_request(
            "MissingParameter",
            format!("The request must contain the parameter {name}"),
        )
    }

    pub fn invalid_value(name: &str, value: &str, expect: &str) -> ApiError {
        ApiError::bad_request(
            "InvalidParameterValue",
            format!("Value ({value}) for parameter {name} is invalid. {expect}"),
        )
    }

    pub fn invalid_parameter(message: impl Into<String>) -> ApiError {
        ApiError::bad_request("InvalidParameter", message)
    }

    pub fn invalid_filter(name: &str) -> ApiError {
        ApiError::bad_request(
            "InvalidParameterValue",
            format!("The filter '{name}' is invalid"),
        )
    }

    /// More IDs in one `Name.N` list than an action takes.
    pub fn too_many_ids(name: &str, max: usize) -> ApiError {
        ApiError::bad_request(
            "InvalidParameterValue",
            format!("The parameter {name} takes at most {max} values in one request."),
        )
    }

    /// EC2's bound on the filter values of one Describe call.
    pub fn filter_limit(max: usize) -> ApiError {
        ApiError::bad_request(
            "FilterLimitExceeded",
            format!("The maximum number of filter values specified on a single call is {max}"),
        )
    }

    pub fn unknown_parameter(name: &str) -> ApiError {
        ApiError::bad_request(
            "UnknownParameter",
            format!("The parameter {name} is not recognized"),
        )
    }

    pub fn auth_failure(message: impl Into<String>) -> ApiError {
        ApiError::new(401, "AuthFailure", message)
    }

    pub fn unauthorized() -> ApiError {
        ApiError::new(
            403,
            "UnauthorizedOperation",
            "You are not authorized to perform this operation.",
        )
    }

    pub fn dry_run() -> ApiError {
        ApiError::new(
            412,
            "DryRunOperation",
            "Request would have succeeded, but DryRun flag is set.",
        )
    }

    pub fn internal() -> ApiError {
        ApiError::new(
            500,
            "InternalError",
            "An internal error has occurred. The request may be retried.",
        )
    }

    pub fn unavailable() -> ApiError {
        ApiError::new(
            503,
            "ServiceUnavailable",
            "The service is busy; retry the request.",
        )
    }
}

impl From<StoreError> for ApiError {
    /// The one place store failures get their EC2 code, HTTP status and message.
    fn from(e: StoreError) -> ApiError {
        use flowlog_store::ResourceKind;
        let not_found = |kind: ResourceKind, id: &str| match kind {
            ResourceKind::Vpc => ApiError::bad_request(
                "InvalidVpcID.NotFound",
                format!("The vpc ID '{id}' does not exist"),
            ),
            ResourceKind::Subnet => ApiError::bad_request(
                "InvalidSubnetID.NotFound",
                format!("The subnet ID '{id}' does not exist"),
            ),
            ResourceKind::NetworkInterface => ApiError::bad_request(
                "InvalidNetworkInterfaceID.NotFound",
                format!("The networkInterface ID '{id}' does not exist"),
            ),
            ResourceKind::FlowLog => ApiError::bad_request(
                "InvalidFlowLogId.NotFound",
                format!("The flow log ID '{id}' does not exist"),
            ),
        };
        match e {
            StoreError::NotFound { kind, id } => not_found(kind, &id),
            StoreError::InvalidId { id } => {
                ApiError::bad_request("InvalidID", format!("The ID '{id}' is not valid"))
            }
            StoreError::DependencyViolation { kind, id } => {
                let noun = match kind {
                    ResourceKind::Vpc => "vpc",
                    ResourceKind::Subnet => "subnet",
                    ResourceKind::NetworkInterface => "networkInterface",
                    ResourceKind::FlowLog => "flow log",
                };
                ApiError::bad_request(
                    "DependencyViolation",
                    format!("The {noun} '{id}' has dependencies and cannot be deleted."),
                )
            }
            StoreError::SubnetRange { cidr } => ApiError::bad_request(
                "InvalidSubnet.Range",
                format!("The CIDR '{cidr}' is invalid."),
            ),
            StoreError::SubnetConflict { cidr } => ApiError::bad_request(
                "InvalidSubnet.Conflict",
                format!("The CIDR '{cidr}' conflicts with another subnet"),
            ),
            StoreError::AddressOutOfRange { addr } => ApiError::bad_request(
                "InvalidParameterValue",
                format!("Address {addr} does not fall within the subnet's address range"),
            ),
            StoreError::AddressInUse { addr } => ApiError::bad_request(
                "InvalidIPAddress.InUse",
                format!("Address {addr} is in use."),
            ),
            StoreError::SubnetFull { subnet_id } => ApiError::bad_request(
                "InsufficientFreeAddressesInSubnet",
                format!("The specified subnet {subnet_id} has insufficient free addresses."),
            ),
            StoreError::TagLimitExceeded { id, limit } => ApiError::bad_request(
                "TagLimitExceeded",
                format!("The maximum number of tags ({limit}) for resource {id} has been reached."),
            ),
            StoreError::IdempotentParameterMismatch => ApiError::bad_request(
                "IdempotentParameterMismatch",
                "The request uses the same client token as a previous, but non-identical request.",
            ),
            e @ StoreError::ForeignResource { .. } => {
                ApiError::new(403, "UnauthorizedOperation", e.to_string())
            }
            StoreError::Busy => ApiError::unavailable(),
            // EC2's retryable 503 code: SDKs retry `Unavailable` with backoff.
            StoreError::Unavailable(detail) => {
                tracing::warn!(error = %detail, "database unavailable");
                ApiError::new(
                    503,
                    "Unavailable",
                    "The service is unavailable (its database cannot be reached); retry the request.",
                )
            }
            other => {
                tracing::error!(error = %other, "store failure");
                ApiError::internal()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowlog_store::ResourceKind;

    fn wire(e: StoreError) -> (u16, String, String) {
        let a = ApiError::from(e);
        (a.status, a.code, a.message)
    }

    #[test]
    fn store_errors_get_their_ec2_codes_here() {
        assert_eq!(
            wire(StoreError::NotFound {
                kind: ResourceKind::NetworkInterface,
                id: "eni-1".into()
            }),
            (
                400,
                "InvalidNetworkInterfaceID.NotFound".into(),
                "The networkInterface ID 'eni-1' does not exist".into()
            )
        );
        assert_eq!(
            wire(StoreError::DependencyViolation {
                kind: ResourceKind::Subnet,
                id: "subnet-1".into()
            }),
            (
                400,
                "DependencyViolation".into(),
                "The subnet 'subnet-1' has dependencies and cannot be deleted.".into()
            )
        );
        assert_eq!(
            wire(StoreError::AddressInUse {
                addr: "10.0.0.9".parse().unwrap()
            })
            .1,
            "InvalidIPAddress.InUse"
        );
    }

    #[test]
    fn an_unreachable_database_is_a_retryable_503_never_a_500() {
        let (status, code, _) = wire(StoreError::Unavailable("connection refused".into()));
        assert_eq!((status, code.as_str()), (503, "Unavailable"));
        assert_eq!(wire(StoreError::Busy).0, 503);
        assert_eq!(wire(StoreError::Postgres("syntax".into())).0, 500);
    }
}
