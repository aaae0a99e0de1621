//! `flowlog ddl`: prints the Athena `CREATE EXTERNAL TABLE` (partition projection matching the
//! object layout) and the DuckDB view for an S3 flow log, described either by the JSON of
//! `aws ec2 describe-flow-logs` (`--describe FILE` or `-` for stdin) or by options.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{bail, Context};
use flowlog_delivery::s3::ddl::{root_of_arn, TableSpec};
use flowlog_delivery::s3::Layout;
use flowlog_model::record::RecordFormat;
use flowlog_model::{DestinationOptions, FileFormat};

#[derive(clap::Args)]
pub struct Args {
    /// Output of `aws ec2 describe-flow-logs` (or DescribeFlowLogs JSON) naming exactly one
    /// S3 flow log, or use --flow-log-id to pick one; `-` reads stdin.
    #[arg(long, value_name = "FILE")]
    pub describe: Option<PathBuf>,
    /// With --describe: the flow log to use when the JSON lists several.
    #[arg(long)]
    pub flow_log_id: Option<String>,
    /// Without --describe: the flow log's LogFormat (default: the v2 format).
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Without --describe: the LogDestination ARN (arn:aws:s3:::bucket/prefix/).
    #[arg(long, value_name = "ARN")]
    pub destination: Option<String>,
    /// Without --describe: `plain-text` or `parquet`.
    #[arg(long, default_value = "plain-text")]
    pub file_format: String,
    /// Without --describe: HiveCompatiblePartitions=true.
    #[arg(long)]
    pub hive: bool,
    /// Without --describe: PerHourPartition=true.
    #[arg(long)]
    pub per_hour: bool,
    /// Account in the object keys (the flow log's owner).
    #[arg(long, default_value = "123456789012")]
    pub account: String,
    /// Region in the object keys.
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
    /// Table / view name.
    #[arg(long, default_value = "vpc_flow_logs")]
    pub table: String,
    /// Folder holding `AWSLogs/` for the DuckDB view (a local copy, or s3:// with httpfs);
    /// default: the destination's s3://bucket/prefix/.
    #[arg(long, value_name = "DIR")]
    pub root: Option<String>,
    /// First day of the projected date range (yyyy/MM/dd).
    #[arg(long, default_value = "2021/01/01")]
    pub since: String,
    /// `athena`, `duckdb` or `both`.
    #[arg(long, default_value = "both")]
    pub engine: String,
}

/// (LogFormat, LogDestination, options) of one flow log from DescribeFlowLogs JSON.
fn from_describe(
    text: &str,
    id: Option<&str>,
) -> anyhow::Result<(Option<String>, String, DestinationOptions)> {
    let v: serde_json::Value = serde_json::from_str(text)
        .context("--describe: not JSON (use `aws ec2 describe-flow-logs --output json`)")?;
    let list = v
        .get("FlowLogs")
        .and_then(|l| l.as_array())
        .context("--describe: no FlowLogs list in the JSON")?;
    let chosen: Vec<&serde_json::Value> = list
        .iter()
        .filter(|f| id.is_none_or(|id| f.get("FlowLogId").and_then(|x| x.as_str()) == Some(id)))
        .collect();
    let f = match chosen.as_slice() {
        [one] => *one,
        [] => bail!(
            "--describe: no flow log{} in the JSON",
            id.map(|i| format!(" {i}")).unwrap_or_default()
        ),
        _ => bail!(
            "--describe: the JSON lists {} flow logs; pick one with --flow-log-id",
            chosen.len()
        ),
    };
    let s = |k: &str| f.get(k).and_then(|x| x.as_str()).map(str::to_string);
    if s("LogDestinationType").as_deref() != Some("s3") {
        bail!(
            "flow log {} does not deliver to S3: there are no files to query",
            s("FlowLogId").unwrap_or_default()
        );
    }
    let dest = s("LogDestination").context("--describe: the flow log has no LogDestination")?;
    let o = f.get("DestinationOptions");
    let b = |k: &str| {
        o.and_then(|o| o.get(k))
            .and_then(|x| x.as_bool())
            .unwrap_or(false)
    };
    let file_format = match o.and_then(|o| o.get("FileFormat")).and_then(|x| x.as_str()) {
        None => FileFormat::PlainText,
        Some(x) => {
            FileFormat::parse(x).with_context(|| format!("--describe: unknown FileFormat {x:?}"))?
        }
    };
    Ok((
        s("LogFormat"),
        dest,
        DestinationOptions {
            file_format,
            hive_compatible_partitions: b("HiveCompatiblePartitions"),
            per_hour_partition: b("PerHourPartition"),
        },
    ))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let (log_format, destination, options) = match &args.describe {
        Some(p) => {
            let mut text = String::new();
            if p.as_os_str() == "-" {
                std::io::stdin().read_to_string(&mut text)?;
            } else {
                text = std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read {}", p.display()))?;
            }
            from_describe(&text, args.flow_log_id.as_deref())?
        }
        None => (
            args.log_format.clone(),
            args.destination
                .clone()
                .context("give --describe FILE or --destination arn:aws:s3:::bucket/prefix/")?,
            DestinationOptions {
                file_format: FileFormat::parse(&args.file_format).with_context(|| {
                    format!(
                        "--file-format {:?}: use plain-text or parquet",
                        args.file_format
                    )
                })?,
                hive_compatible_partitions: args.hive,
                per_hour_partition: args.per_hour,
            },
        ),
    };
    let format = match &log_format {
        None => RecordFormat::default(),
        Some(f) => RecordFormat::parse_checked(f)
            .map_err(|e| anyhow::anyhow!("LogFormat {f:?} is not valid: {e}"))?,
    };
    let s3_root = root_of_arn(&destination).with_context(|| {
        format!("{destination:?} is not an S3 bucket ARN (arn:aws:s3:::bucket/prefix/)")
    })?;
    let mut spec = TableSpec {
        table: &args.table,
        format: &format,
        layout: Layout::from(options),
        account_id: &args.account,
        region: &args.region,
        root: &s3_root,
        since: &args.since,
    };
    let engines = match args.engine.as_str() {
        "athena" => (true, false),
        "duckdb" => (false, true),
        "both" => (true, true),
        e => bail!("--engine {e:?}: use athena, duckdb or both"),
    };
    if engines.0 {
        if engines.1 {
            println!("-- Athena");
        }
        print!("{}", spec.athena());
    }
    if engines.1 {
        let root = args.root.as_deref().map(|r| {
            if r.ends_with('/') {
                r.to_string()
            } else {
                format!("{r}/")
            }
        });
        if let Some(r) = &root {
            spec.root = r;
        }
        if engines.0 {
            println!("\n-- DuckDB");
        }
        print!("{}", spec.duckdb());
    }
    Ok(())
}
