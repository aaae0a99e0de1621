//! What an agent and the control plane say to each other (JSON over HTTP for a separate
//! `flowlog agent`, plain calls inside `flowlog serve`): the agent reports the interfaces it
//! found, its inventory file if any, and delivery status changes; the control plane answers
//! with the interfaces to capture and the flow logs each one feeds.

use flowlog_delivery::{Destination, FlowLogTarget};
use flowlog_inventory::discover::HostInterface;
use flowlog_model::record::{AwsIpRanges, InterfaceContext, IpPrefix, RecordFormat};
use flowlog_model::{DeliverStatus, DestinationOptions, TrafficType};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Path of the sync call on the control plane.
pub const SYNC_PATH: &str = "/agent/v1/sync";
/// Action name the caller's allow list must cover (`flowlog:*` or `*`).
pub const SYNC_ACTION: &str = "flowlog:AgentSync";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SyncRequest {
    /// Host name, for logs.
    pub host: String,
    /// Interfaces found on the host (all namespaces the agent looked at).
    pub interfaces: Vec<HostInterface>,
    /// Text of the agent's inventory file; without one, the interfaces of the agent's own
    /// namespace are registered as ENIs of the default VPC.
    pub inventory: Option<String>,
    /// Delivery status changes since the last sync.
    pub statuses: Vec<StatusReport>,
    /// Capture state of every monitored ENI (as of the previous pass).
    #[serde(default)]
    pub capture: Vec<crate::capture_state::CaptureReport>,
    /// The `cursor` of the last full answer this agent holds. When the desired state has not
    /// changed since, the control plane answers `unchanged` with no assignments. Absent from
    /// older agents (and then every answer is full).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    pub flow_log_id: String,
    /// `SUCCESS` or `FAILED`.
    pub status: String,
    pub message: Option<String>,
}

impl StatusReport {
    pub fn status(&self) -> Option<DeliverStatus> {
        DeliverStatus::parse(&self.status)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncResponse {
    pub assignments: Vec<Assignment>,
    /// Opaque position of the control plane's state this answer was computed at; the agent
    /// sends it back as `SyncRequest.cursor`. Absent from older control planes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// The desired state is the one of the request's `cursor`: `assignments` is empty and the
    /// agent keeps what it has. Only ever set for a request that carried a cursor.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unchanged: bool,
}

/// One interface to capture and what its records feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    pub eni_id: String,
    pub account_id: String,
    pub netns: Option<String>,
    pub ifname: String,
    pub targets: Vec<TargetSpec>,
    /// What the records' later fields need (absent from older control planes).
    #[serde(default)]
    pub interface: InterfaceSpec,
}

/// The ENI's place in the inventory, for vpc-id, subnet-id, instance-id, az-id and
/// traffic-path (spec §4.2).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceSpec {
    pub vpc_id: Option<String>,
    pub subnet_id: Option<String>,
    pub instance_id: Option<String>,
    pub az_id: Option<String>,
    /// CIDR blocks of the ENI's VPC.
    #[serde(default)]
    pub vpc_cidrs: Vec<String>,
}

impl InterfaceSpec {
    /// The records' context for this ENI in `region`, with the agent's AWS ranges.
    pub fn context(&self, region: &str, ranges: Option<Arc<AwsIpRanges>>) -> InterfaceContext {
        InterfaceContext {
            vpc_id: self.vpc_id.clone(),
            subnet_id: self.subnet_id.clone(),
            instance_id: self.instance_id.clone(),
            region: (!region.is_empty()).then(|| region.to_string()),
            az_id: self.az_id.clone(),
            vpc_cidrs: self
                .vpc_cidrs
                .iter()
                .filter_map(|c| IpPrefix::parse(c))
                .collect(),
            aws_ranges: ranges,
        }
    }
}

/// A flow log as delivery needs it, in a form that travels as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetSpec {
    pub flow_log_id: String,
    pub account_id: String,
    pub region: String,
    pub traffic_type: String,
    pub log_format: Option<String>,
    /// `MaxAggregationInterval` when the flow log set one (60 or 600 seconds).
    #[serde(default)]
    pub max_aggregation_interval: Option<u32>,
    pub s3: Option<S3Spec>,
    pub cloudwatch_logs: Option<CwlSpec>,
    /// Absent from older peers' JSON (they know no Firehose).
    #[serde(default)]
    pub firehose: Option<FirehoseSpec>,
    /// S3 `DestinationOptions` as `<format>,<hive>,<hour>` (None: defaults).
    #[serde(default)]
    pub destination_options: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct S3Spec {
    pub bucket: String,
    /// Subfolder without edge slashes ("" for none).
    pub prefix: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CwlSpec {
    pub group: String,
    pub role_arn: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirehoseSpec {
    pub stream_name: String,
    /// Region and account of the delivery stream (from its ARN).
    pub region: String,
    pub account: String,
    /// `DeliverLogsPermissionArn` when the flow log has one.
    #[serde(default)]
    pub role_arn: Option<String>,
    /// `DeliverCrossAccountRole` when the flow log has one.
    #[serde(default)]
    pub cross_account_role: Option<String>,
}

impl Assignment {
    /// The aggregation window for this interface: the agent's setting, shortened to the
    /// smallest `MaxAggregationInterval` of the flow logs covering it.
    pub fn interval_s(&self, agent_window_s: u64) -> u64 {
        self.targets
            .iter()
            .filter_map(|t| t.max_aggregation_interval)
            .map(u64::from)
            .fold(agent_window_s, u64::min)
            .max(1)
    }
}

impl TargetSpec {
    pub fn from_flow_log(f: &flowlog_model::FlowLog, region: &str) -> TargetSpec {
        let (mut s3, mut cloudwatch_logs, mut firehose) = (None, None, None);
        match &f.destination {
            flowlog_model::Destination::S3 { bucket, prefix, .. } => {
                s3 = Some(S3Spec {
                    bucket: bucket.clone(),
                    prefix: prefix.clone(),
                })
            }
            flowlog_model::Destination::CloudWatchLogs {
                group, role_arn, ..
            } => {
                cloudwatch_logs = Some(CwlSpec {
                    group: group.clone(),
                    role_arn: role_arn.clone(),
                })
            }
            flowlog_model::Destination::Firehose {
                stream,
                role_arn,
                cross_account_role,
                ..
            } => {
                firehose = Some(FirehoseSpec {
                    stream_name: stream.name.clone(),
                    region: stream.region.clone(),
                    account: stream.account.clone(),
                    role_arn: role_arn.clone(),
                    cross_account_role: cross_account_role.clone(),
                })
            }
        }
        TargetSpec {
            flow_log_id: f.id.clone(),
            account_id: f.account_id.clone(),
            region: region.to_string(),
            traffic_type: f.traffic_type.as_str().to_string(),
            log_format: f.log_format.clone(),
            max_aggregation_interval: f.max_aggregation_interval,
            s3,
            cloudwatch_logs,
            firehose,
            destination_options: f.destination_options.map(|o| o.encode()),
        }
    }

    /// The delivery target, or None when the spec is not one we understand.
    pub fn to_target(&self) -> Option<FlowLogTarget> {
        let destination = match (&self.s3, &self.cloudwatch_logs, &self.firehose) {
            (Some(s), None, None) => Destination::S3 {
                bucket: s.bucket.clone(),
                prefix: if s.prefix.is_empty() {
                    String::new()
                } else {
                    format!("{}/", s.prefix)
                },
            },
            (None, Some(c), None) => Destination::CloudWatchLogs {
                group: c.group.clone(),
                role_arn: c.role_arn.clone(),
            },
            (None, None, Some(f)) => Destination::Firehose {
                stream_name: f.stream_name.clone(),
                region: f.region.clone(),
                account: f.account.clone(),
                role_arn: f.role_arn.clone(),
                cross_account_role: f.cross_account_role.clone(),
            },
            _ => return None,
        };
        let format = match &self.log_format {
            None => RecordFormat::default(),
            Some(f) => RecordFormat::parse(f)?,
        };
        let options = match &self.destination_options {
            None => DestinationOptions::default(),
            Some(o) => DestinationOptions::decode(o)?,
        };
        Some(FlowLogTarget {
            flow_log_id: self.flow_log_id.clone(),
            account_id: self.account_id.clone(),
            region: self.region.clone(),
            traffic_type: TrafficType::parse(&self.traffic_type)?,
            format,
            destination,
            options,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowlog_model::FileFormat;

    fn target(max: Option<u32>) -> TargetSpec {
        TargetSpec {
            flow_log_id: "fl-1".into(),
            account_id: "123456789012".into(),
            region: "us-east-1".into(),
            traffic_type: "ALL".into(),
            log_format: None,
            max_aggregation_interval: max,
            s3: Some(S3Spec {
                bucket: "b".into(),
                prefix: "p".into(),
            }),
            cloudwatch_logs: None,
            firehose: None,
            destination_options: None,
        }
    }

    #[test]
    fn window_is_the_smallest_asked_for() {
        let mut a = Assignment {
            eni_id: "eni-1".into(),
            account_id: "123456789012".into(),
            netns: None,
            ifname: "eth0".into(),
            targets: vec![target(None), target(Some(60))],
            interface: InterfaceSpec::default(),
        };
        assert_eq!(a.interval_s(600), 60);
        assert_eq!(a.interval_s(2), 2);
        a.targets.pop();
        assert_eq!(a.interval_s(600), 600);
    }

    #[test]
    fn targets_become_delivery_targets() {
        let t = target(None).to_target().unwrap();
        assert_eq!(
            t.destination,
            Destination::S3 {
                bucket: "b".into(),
                prefix: "p/".into()
            }
        );
        assert_eq!(t.options, DestinationOptions::default());
        let mut bad = target(None);
        bad.traffic_type = "all".into();
        assert!(bad.to_target().is_none());
        let mut pq = target(None);
        pq.destination_options = Some("parquet,true,true".into());
        assert_eq!(
            pq.to_target().unwrap().options.file_format,
            FileFormat::Parquet
        );
        let mut fh = target(None);
        fh.s3 = None;
        fh.firehose = Some(FirehoseSpec {
            stream_name: "st".into(),
            region: "us-east-1".into(),
            account: "210987654321".into(),
            role_arn: Some("arn:aws:iam::123456789012:role/a".into()),
            cross_account_role: Some("arn:aws:iam::210987654321:role/b".into()),
        });
        let json = serde_json::to_string(&fh).unwrap();
        let back: TargetSpec = serde_json::from_str(&json).unwrap();
        assert_eq!(
            back.to_target().unwrap().destination,
            Destination::Firehose {
                stream_name: "st".into(),
                region: "us-east-1".into(),
                account: "210987654321".into(),
                role_arn: Some("arn:aws:iam::123456789012:role/a".into()),
                cross_account_role: Some("arn:aws:iam::210987654321:role/b".into()),
            }
        );
        // Two destinations at once is not a target.
        let mut both = fh.clone();
        both.s3 = target(None).s3;
        assert!(both.to_target().is_none());
        // An older peer's target (no `firehose` member) still reads.
        let mut old_json: serde_json::Value = serde_json::to_value(target(None)).unwrap();
        old_json.as_object_mut().unwrap().remove("firehose");
        let old_t: TargetSpec = serde_json::from_value(old_json).unwrap();
        assert_eq!(old_t.firehose, None);
        assert!(old_t.to_target().is_some());
        // An older agent's JSON (no new members) still reads.
        let old: Assignment = serde_json::from_str(
            r#"{"eni_id":"eni-1","account_id":"1","netns":null,"ifname":"x","targets":[]}"#,
        )
        .unwrap();
        assert_eq!(old.interface, InterfaceSpec::default());
    }
}
