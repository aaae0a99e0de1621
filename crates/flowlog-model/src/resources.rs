//! The EC2 resources the control plane keeps: VPCs, subnets, network interfaces (ENIs) and
//! flow logs, as plain data. Validation lives in the API; persistence in the store.

use crate::{DeliverStatus, LogDestinationType, ResourceType, TrafficType};

pub type Tags = Vec<(String, String)>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vpc {
    pub id: String,
    pub account_id: String,
    pub cidr_block: String,
    pub instance_tenancy: String,
    pub is_default: bool,
    pub cidr_association_id: String,
    pub dhcp_options_id: String,
    pub tags: Tags,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subnet {
    pub id: String,
    pub account_id: String,
    pub vpc_id: String,
    pub cidr_block: String,
    pub availability_zone: String,
    /// `AvailabilityZoneId` (`use1-az1`) when CreateSubnet or the inventory gave one: the
    /// records' `az-id`.
    pub availability_zone_id: Option<String>,
    /// Addresses of the subnet that are neither reserved nor used by an ENI.
    pub available_ip_address_count: u64,
    pub default_for_az: bool,
    pub tags: Tags,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkInterface {
    pub id: String,
    pub account_id: String,
    pub subnet_id: String,
    pub vpc_id: String,
    pub availability_zone: String,
    pub description: String,
    pub private_ip_address: String,
    pub mac_address: String,
    pub security_group_ids: Vec<String>,
    pub status: String,
    pub tags: Tags,
    /// The instance the ENI is attached to, when the inventory names one (`instance-id`).
    pub instance_id: Option<String>,
}

/// Where a flow log publishes, as given at creation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// `arn:<partition>:s3:::<bucket>[/<prefix>]`; `prefix` has no leading or trailing `/`.
    S3 {
        arn: String,
        bucket: String,
        prefix: String,
    },
    /// A log group given by name (`LogGroupName`) or by ARN (`LogDestination`).
    CloudWatchLogs {
        group: String,
        arn: Option<String>,
        role_arn: String,
    },
    /// A Kinesis Data Firehose delivery stream (`LogDestinationType=kinesis-data-firehose`).
    Firehose {
        /// The ARN exactly as given.
        arn: String,
        stream: FirehoseStream,
        /// `DeliverLogsPermissionArn`: required across accounts, optional otherwise.
        role_arn: Option<String>,
        /// `DeliverCrossAccountRole`: only across accounts.
        cross_account_role: Option<String>,
    },
}

/// The parts of a delivery-stream ARN.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FirehoseStream {
    pub partition: String,
    pub region: String,
    pub account: String,
    pub name: String,
}

/// `arn:<partition>:firehose:<region>:<account>:deliverystream/<name>` (the form AWS gives
/// out) or `...:deliverystream:<name>` (the form the EC2 API reference spells). The name is
/// 1 to 64 characters of letters, digits, `_`, `.`, `-`; the account 12 digits.
pub fn parse_firehose_arn(arn: &str) -> Option<FirehoseStream> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    if parts.len() != 6
        || parts[0] != "arn"
        || !parts[1].starts_with("aws")
        || parts[2] != "firehose"
    {
        return None;
    }
    let (region, account, resource) = (parts[3], parts[4], parts[5]);
    let name = resource
        .strip_prefix("deliverystream/")
        .or_else(|| resource.strip_prefix("deliverystream:"))?;
    let region_ok = !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let account_ok = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
    let name_ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    (region_ok && account_ok && name_ok).then(|| FirehoseStream {
        partition: parts[1].to_string(),
        region: region.to_string(),
        account: account.to_string(),
        name: name.to_string(),
    })
}

/// `arn:<partition>:s3:::<bucket>[/<prefix>[/]]` → (bucket, prefix without edge slashes).
/// Lenient on bucket length and case so legacy bucket names work; strict on characters that
/// could escape the key layout or a local folder (`/`, `..`, empty segments).
pub fn parse_s3_arn(arn: &str) -> Option<(String, String)> {
    let rest = arn.strip_prefix("arn:")?;
    let (partition, rest) = rest.split_once(':')?;
    if !partition.starts_with("aws") {
        return None;
    }
    let path = rest.strip_prefix("s3:::")?;
    let (bucket, prefix) = match path.split_once('/') {
        Some((b, p)) => (b, p.trim_matches('/')),
        None => (path, ""),
    };
    let valid = (1..=255).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_'))
        && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
        && !bucket.contains("..");
    if !valid || prefix.contains("//") || prefix.split('/').any(|seg| seg == ".." || seg == ".") {
        return None;
    }
    Some((bucket.to_string(), prefix.to_string()))
}

impl Destination {
    pub fn kind(&self) -> LogDestinationType {
        match self {
            Destination::S3 { .. } => LogDestinationType::S3,
            Destination::CloudWatchLogs { .. } => LogDestinationType::CloudWatchLogs,
            Destination::Firehose { .. } => LogDestinationType::KinesisDataFirehose,
        }
    }

    /// The value compared for `FlowLogAlreadyExists` (spec §14 Q2): the group name for CWL,
    /// the bucket ARN with its subfolder for S3 (trailing `/` normalised), the stream's account,
    /// region and name for Firehose (both ARN spellings name one stream).
    pub fn duplicate_key(&self) -> String {
        match self {
            Destination::S3 { bucket, prefix, .. } => format!("s3:{bucket}/{prefix}"),
            Destination::CloudWatchLogs { group, .. } => format!("cwl:{group}"),
            Destination::Firehose { stream, .. } => {
                format!(
                    "firehose:{}:{}:{}",
                    stream.region, stream.account, stream.name
                )
            }
        }
    }

    /// `logDestination` as DescribeFlowLogs reports it (absent for name-created CWL).
    pub fn log_destination(&self) -> Option<&str> {
        match self {
            Destination::S3 { arn, .. } => Some(arn),
            Destination::CloudWatchLogs { arn, .. } => arn.as_deref(),
            Destination::Firehose { arn, .. } => Some(arn),
        }
    }

    pub fn log_group_name(&self) -> Option<&str> {
        match self {
            Destination::S3 { .. } | Destination::Firehose { .. } => None,
            Destination::CloudWatchLogs { group, .. } => Some(group),
        }
    }

    pub fn role_arn(&self) -> Option<&str> {
        match self {
            Destination::S3 { .. } => None,
            Destination::CloudWatchLogs { role_arn, .. } => Some(role_arn),
            Destination::Firehose { role_arn, .. } => role_arn.as_deref(),
        }
    }

    /// `DeliverCrossAccountRole` (Firehose only).
    pub fn cross_account_role(&self) -> Option<&str> {
        match self {
            Destination::Firehose {
                cross_account_role, ..
            } => cross_account_role.as_deref(),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowLog {
    pub id: String,
    pub account_id: String,
    pub resource_id: String,
    pub resource_type: ResourceType,
    pub traffic_type: TrafficType,
    pub destination: Destination,
    /// `LogFormat` when given explicitly; None means the default v2 format.
    pub log_format: Option<String>,
    /// `MaxAggregationInterval` when given explicitly (60 or 600).
    pub max_aggregation_interval: Option<u32>,
    /// Milliseconds since the Unix epoch.
    pub creation_time_ms: i64,
    pub deliver_status: DeliverStatus,
    pub deliver_error: Option<String>,
    pub tags: Tags,
    /// `DestinationOptions` (S3 only; None for CloudWatch Logs).
    pub destination_options: Option<DestinationOptions>,
}

/// `DestinationOptions.FileFormat` (spec §5.5).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum FileFormat {
    #[default]
    PlainText,
    Parquet,
}

impl FileFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            FileFormat::PlainText => "plain-text",
            FileFormat::Parquet => "parquet",
        }
    }

    pub fn parse(s: &str) -> Option<FileFormat> {
        match s {
            "plain-text" => Some(FileFormat::PlainText),
            "parquet" => Some(FileFormat::Parquet),
            _ => None,
        }
    }
}

/// S3 `DestinationOptions` (spec §5.5): file format and key layout. Defaults: plain text,
/// no Hive prefixes, daily partitions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct DestinationOptions {
    pub file_format: FileFormat,
    pub hive_compatible_partitions: bool,
    pub per_hour_partition: bool,
}

impl DestinationOptions {
    /// Compact text form for storage: `<format>,<hive>,<hour>` (`parquet,true,false`).
    pub fn encode(&self) -> String {
        format!(
            "{},{},{}",
            self.file_format.as_str(),
            self.hive_compatible_partitions,
            self.per_hour_partition
        )
    }

    pub fn decode(s: &str) -> Option<DestinationOptions> {
        let mut it = s.split(',');
        let file_format = FileFormat::parse(it.next()?)?;
        let b = |v: Option<&str>| v?.parse::<bool>().ok();
        let hive = b(it.next())?;
        let hour = b(it.next())?;
        it.next().is_none().then_some(DestinationOptions {
            file_format,
            hive_compatible_partitions: hive,
            per_hour_partition: hour,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{parse_firehose_arn, parse_s3_arn, DestinationOptions, FileFormat};

    #[test]
    fn firehose_arns() {
        let s =
            parse_firehose_arn("arn:aws:firehose:us-east-1:123456789012:deliverystream/my-stream")
                .unwrap();
        assert_eq!(
            (
                s.partition.as_str(),
                s.region.as_str(),
                s.account.as_str(),
                s.name.as_str()
            ),
            ("aws", "us-east-1", "123456789012", "my-stream")
        );
        let colon =
            parse_firehose_arn("arn:aws-cn:firehose:cn-north-1:123456789012:deliverystream:a.b_c")
                .unwrap();
        assert_eq!(colon.partition, "aws-cn");
        assert_eq!(colon.name, "a.b_c");
        for bad in [
            "my-stream",
            "arn:aws:firehose:us-east-1:123456789012:deliverystream/",
            "arn:aws:firehose:us-east-1:123456789012:stream/x",
            "arn:aws:kinesis:us-east-1:123456789012:deliverystream/x",
            "arn:aws:firehose:us-east-1:12345:deliverystream/x",
            "arn:aws:firehose::123456789012:deliverystream/x",
            "arn:aws:firehose:us-east-1:123456789012:deliverystream/a/b",
            "arn:aws:firehose:us-east-1:123456789012:deliverystream/a:b",
            "arn:foo:firehose:us-east-1:123456789012:deliverystream/x",
        ] {
            assert_eq!(parse_firehose_arn(bad), None, "{bad}");
        }
        let long = format!(
            "arn:aws:firehose:us-east-1:123456789012:deliverystream/{}",
            "x".repeat(65)
        );
        assert_eq!(parse_firehose_arn(&long), None);
    }

    #[test]
    fn destination_options_round_trip() {
        let o = DestinationOptions {
            file_format: FileFormat::Parquet,
            hive_compatible_partitions: true,
            per_hour_partition: false,
        };
        assert_eq!(o.encode(), "parquet,true,false");
        assert_eq!(DestinationOptions::decode(&o.encode()), Some(o));
        assert_eq!(DestinationOptions::decode("parquet,true"), None);
        assert_eq!(DestinationOptions::decode("csv,true,true"), None);
    }

    #[test]
    fn s3_arns() {
        assert_eq!(
            parse_s3_arn("arn:aws:s3:::b1"),
            Some(("b1".into(), "".into()))
        );
        assert_eq!(
            parse_s3_arn("arn:aws:s3:::my-bucket/my-logs/"),
            Some(("my-bucket".into(), "my-logs".into()))
        );
        assert_eq!(
            parse_s3_arn("arn:aws:s3:::bkt/a/b"),
            Some(("bkt".into(), "a/b".into()))
        );
        assert_eq!(parse_s3_arn("my-plain-bucket-name"), None);
        assert_eq!(parse_s3_arn("arn:aws:s3:::../x"), None);
        assert_eq!(parse_s3_arn("arn:aws:s3:::"), None);
        assert_eq!(parse_s3_arn("arn:aws:logs:::b"), None);
    }
}
