//! What the control plane hands to delivery: one [`FlowLogTarget`] per active flow log
//! covering an ENI, with its [`Destination`] parsed from the API's `LogDestination` /
//! `LogGroupName`. Parsing lives here so delivery and the API agree on bucket, prefix and group.

use flowlog_model::record::RecordFormat;
use flowlog_model::{DestinationOptions, TrafficType};

/// Where one flow log publishes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Destination {
    /// S3 bucket and optional prefix (`my-logs/`, always empty or ending in exactly one `/`).
    S3 { bucket: String, prefix: String },
    /// CloudWatch Logs group and the role (`DeliverLogsPermissionArn`) to deliver as.
    CloudWatchLogs { group: String, role_arn: String },
    /// A Kinesis Data Firehose delivery stream, with `DeliverLogsPermissionArn` (`role_arn`,
    /// assumed to deliver across accounts) and `DeliverCrossAccountRole` when the flow log has them.
    Firehose {
        stream_name: String,
        region: String,
        account: String,
        role_arn: Option<String>,
        cross_account_role: Option<String>,
    },
}

/// One active flow log as delivery needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowLogTarget {
    pub flow_log_id: String,
    /// Owner of the flow log (S3 key, CWL group account).
    pub account_id: String,
    /// Region of the monitored resource.
    pub region: String,
    pub traffic_type: TrafficType,
    pub format: RecordFormat,
    pub destination: Destination,
    /// S3 file format and key layout (defaults for CloudWatch Logs, where they do not apply).
    pub options: DestinationOptions,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    #[error("LogDestination must be the ARN of an S3 bucket: {0}")]
    NotS3Arn(String),
    #[error("LogDestination must be the ARN of a CloudWatch Logs log group: {0}")]
    NotLogGroupArn(String),
    #[error("LogDestination must be the ARN of a Kinesis Data Firehose delivery stream: {0}")]
    NotFirehoseArn(String),
}

impl Destination {
    /// `arn:<partition>:s3:::bucket[/folder/...]` → bucket and normalised prefix (the API's
    /// parser, `flowlog_model::resources::parse_s3_arn`, with the prefix ending in one `/`).
    pub fn s3_from_arn(arn: &str) -> Result<Destination, TargetError> {
        let (bucket, folder) = flowlog_model::resources::parse_s3_arn(arn)
            .ok_or_else(|| TargetError::NotS3Arn(arn.to_string()))?;
        let prefix = if folder.is_empty() {
            String::new()
        } else {
            format!("{folder}/")
        };
        Ok(Destination::S3 { bucket, prefix })
    }

    /// `arn:<partition>:logs:<region>:<account>:log-group:<name>[:*]` → the group name.
    pub fn log_group_from_arn(arn: &str) -> Result<String, TargetError> {
        let err = || TargetError::NotLogGroupArn(arn.to_string());
        let parts: Vec<&str> = arn.splitn(7, ':').collect();
        if parts.len() != 7 || parts[0] != "arn" || parts[2] != "logs" || parts[5] != "log-group" {
            return Err(err());
        }
        let name = parts[6].strip_suffix(":*").unwrap_or(parts[6]);
        if name.is_empty() {
            return Err(err());
        }
        Ok(name.to_string())
    }

    /// `arn:<partition>:firehose:<region>:<account>:deliverystream/<name>` (or `...:deliverystream:<name>`)
    /// with the flow log's roles → a Firehose destination (the API's parser,
    /// `flowlog_model::resources::parse_firehose_arn`).
    pub fn firehose_from_arn(
        arn: &str,
        role_arn: Option<&str>,
        cross_account_role: Option<&str>,
    ) -> Result<Destination, TargetError> {
        let s = flowlog_model::resources::parse_firehose_arn(arn)
            .ok_or_else(|| TargetError::NotFirehoseArn(arn.to_string()))?;
        Ok(Destination::Firehose {
            stream_name: s.name,
            region: s.region,
            account: s.account,
            role_arn: role_arn.map(str::to_string),
            cross_account_role: cross_account_role.map(str::to_string),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_arns() {
        assert_eq!(
            Destination::s3_from_arn("arn:aws:s3:::b1").unwrap(),
            Destination::S3 {
                bucket: "b1".into(),
                prefix: "".into()
            }
        );
        assert_eq!(
            Destination::s3_from_arn("arn:aws:s3:::b1/my-logs/").unwrap(),
            Destination::S3 {
                bucket: "b1".into(),
                prefix: "my-logs/".into()
            }
        );
        assert_eq!(
            Destination::s3_from_arn("arn:aws:s3:::b1/a/b").unwrap(),
            Destination::S3 {
                bucket: "b1".into(),
                prefix: "a/b/".into()
            }
        );
        assert!(Destination::s3_from_arn("b1").is_err());
        assert!(Destination::s3_from_arn("arn:aws:s3:::").is_err());
    }

    #[test]
    fn firehose_arns() {
        let want = Destination::Firehose {
            stream_name: "s-1".into(),
            region: "eu-west-1".into(),
            account: "123456789012".into(),
            role_arn: Some("arn:aws:iam::123456789012:role/r".into()),
            cross_account_role: None,
        };
        for arn in [
            "arn:aws:firehose:eu-west-1:123456789012:deliverystream/s-1",
            "arn:aws:firehose:eu-west-1:123456789012:deliverystream:s-1",
        ] {
            assert_eq!(
                Destination::firehose_from_arn(arn, Some("arn:aws:iam::123456789012:role/r"), None)
                    .unwrap(),
                want
            );
        }
        assert_eq!(
            Destination::firehose_from_arn("arn:aws:s3:::b", None, None),
            Err(TargetError::NotFirehoseArn("arn:aws:s3:::b".into()))
        );
        assert!(Destination::firehose_from_arn(
            "arn:aws:firehose:eu-west-1:123456789012:deliverystream/",
            None,
            None
        )
        .is_err());
    }

    #[test]
    fn group_arns() {
        assert_eq!(
            Destination::log_group_from_arn("arn:aws:logs:us-east-1:123456789012:log-group:g/x:*")
                .unwrap(),
            "g/x"
        );
        assert!(Destination::log_group_from_arn("arn:aws:logs:us-east-1:1:stream:g").is_err());
    }
}
