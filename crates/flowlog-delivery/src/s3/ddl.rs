//! Tables over delivered flow-log files: the Athena `CREATE EXTERNAL TABLE` with partition
//! projection matching the object layout of [`super::key`], and the equivalent DuckDB view.
//! Pure text generation; `flowlog ddl` prints it.
//!
//! Column names are AWS's (field names with `-` → `_`), types follow the Parquet types of
//! spec §4.1 (INT32 → `int`, INT64 → `bigint`, else `string`), for text and Parquet alike, so
//! one query runs over either. `-` reads as NULL: Athena's text SerDe cannot parse it as a
//! number, and the DuckDB view says `nullstr='-'`; Parquet stores NULL.

use flowlog_model::record::{ColumnType, RecordFormat};

use super::Layout;

/// What a table needs to know about one flow log.
#[derive(Debug, Clone)]
pub struct TableSpec<'a> {
    pub table: &'a str,
    pub format: &'a RecordFormat,
    pub layout: Layout,
    pub account_id: &'a str,
    pub region: &'a str,
    /// Where the `AWSLogs/` folder is, ending in `/`: `s3://bucket/prefix/` (Athena), or any
    /// path or URL DuckDB reads (a local copy, `s3://` with httpfs).
    pub root: &'a str,
    /// First day of the projected date range (`yyyy/MM/dd` or `yyyy`), e.g. `2026/01/01`.
    pub since: &'a str,
}

impl TableSpec<'_> {
    /// The folder holding the partitions: `…/AWSLogs/<acct>/vpcflowlogs/<region>/` or its
    /// Hive form.
    pub fn base(&self) -> String {
        let (acct, region) = (self.account_id, self.region);
        if self.layout.hive {
            format!(
                "{}AWSLogs/aws-account-id={acct}/aws-service=vpcflowlogs/aws-region={region}/",
                self.root
            )
        } else {
            format!("{}AWSLogs/{acct}/vpcflowlogs/{region}/", self.root)
        }
    }

    fn columns(
        &self,
        sql_type: impl Fn(ColumnType) -> &'static str,
    ) -> Vec<(String, &'static str)> {
        self.format
            .fields()
            .iter()
            .map(|f| (f.column_name(), sql_type(f.parquet_type())))
            .collect()
    }

    /// Athena DDL with partition projection (no `MSCK REPAIR` needed).
    pub fn athena(&self) -> String {
        let cols = self
            .columns(|t| match t {
                ColumnType::Int32 => "int",
                ColumnType::Int64 => "bigint",
                ColumnType::String => "string",
            })
            .iter()
            .map(|(n, t)| format!("  `{n}` {t}"))
            .collect::<Vec<_>>()
            .join(",\n");
        let base = self.base();
        let hour = self.layout.per_hour;
        let (partitions, projection) = if self.layout.hive {
            let mut parts = vec!["`year` string", "`month` string", "`day` string"];
            let since_year = self.since.get(..4).unwrap_or("2021");
            let mut proj = vec![
                format!("'projection.year.type'='integer'"),
                format!("'projection.year.range'='{since_year},2099'"),
                "'projection.month.type'='integer'".to_string(),
                "'projection.month.range'='1,12'".to_string(),
                "'projection.month.digits'='2'".to_string(),
                "'projection.day.type'='integer'".to_string(),
                "'projection.day.range'='1,31'".to_string(),
                "'projection.day.digits'='2'".to_string(),
            ];
            if hour {
                parts.push("`hour` string");
                proj.extend([
                    "'projection.hour.type'='integer'".to_string(),
                    "'projection.hour.range'='0,23'".to_string(),
                    "'projection.hour.digits'='2'".to_string(),
                ]);
            }
            (parts.join(", "), proj)
        } else {
            let (fmt, unit, tmpl) = if hour {
                ("yyyy/MM/dd/HH", "HOURS", "${date}")
            } else {
                ("yyyy/MM/dd", "DAYS", "${date}")
            };
            let since = if hour {
                format!("{}/00", self.since)
            } else {
                self.since.to_string()
            };
            (
                "`date` string".to_string(),
                vec![
                    "'projection.date.type'='date'".to_string(),
                    format!("'projection.date.format'='{fmt}'"),
                    format!("'projection.date.range'='{since},NOW'"),
                    "'projection.date.interval'='1'".to_string(),
                    format!("'projection.date.interval.unit'='{unit}'"),
                    format!("'storage.location.template'='{base}{tmpl}'"),
                ],
            )
        };
        let storage = if self.layout.parquet {
            "ROW FORMAT SERDE 'org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe'\n\
             STORED AS INPUTFORMAT 'org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat'\n\
             OUTPUTFORMAT 'org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat'"
        } else {
            "ROW FORMAT DELIMITED\nFIELDS TERMINATED BY ' '"
        };
        let mut props = vec!["'projection.enabled'='true'".to_string()];
        if !self.layout.parquet {
            props.push("'skip.header.line.count'='1'".to_string());
        }
        props.extend(projection);
        format!(
            "CREATE EXTERNAL TABLE IF NOT EXISTS `{table}` (\n{cols}\n)\nPARTITIONED BY ({partitions})\n{storage}\nLOCATION '{base}'\nTBLPROPERTIES (\n  {props}\n);\n",
            table = self.table,
            props = props.join(",\n  ")
        )
    }

    /// DuckDB view over the same files (`read_csv` / `read_parquet` with Hive partitions when
    /// the layout has them).
    pub fn duckdb(&self) -> String {
        let base = self.base();
        let hive = self.layout.hive;
        if self.layout.parquet {
            return format!(
                "CREATE OR REPLACE VIEW {table} AS SELECT * FROM read_parquet('{base}**/*.log.parquet', hive_partitioning = {hive});\n",
                table = self.table
            );
        }
        let cols = self
            .columns(|t| match t {
                ColumnType::Int32 => "INTEGER",
                ColumnType::Int64 => "BIGINT",
                ColumnType::String => "VARCHAR",
            })
            .iter()
            .map(|(n, t)| format!("'{n}': '{t}'"))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "CREATE OR REPLACE VIEW {table} AS SELECT * FROM read_csv('{base}**/*.log.gz', delim = ' ', header = true, nullstr = '-', hive_partitioning = {hive}, columns = {{{cols}}});\n",
            table = self.table
        )
    }
}

/// `s3://bucket/prefix/` of an S3 flow log's `LogDestination` ARN.
pub fn root_of_arn(arn: &str) -> Option<String> {
    let (bucket, prefix) = flowlog_model::resources::parse_s3_arn(arn)?;
    Some(if prefix.is_empty() {
        format!("s3://{bucket}/")
    } else {
        format!("s3://{bucket}/{prefix}/")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec<'a>(format: &'a RecordFormat, layout: Layout) -> TableSpec<'a> {
        TableSpec {
            table: "vpc_flow_logs",
            format,
            layout,
            account_id: "123456789012",
            region: "us-east-1",
            root: "s3://b/p/",
            since: "2026/01/01",
        }
    }

    #[test]
    fn text_daily_layout_projects_dates() {
        let f = RecordFormat::default();
        let d = spec(&f, Layout::default()).athena();
        assert!(
            d.contains("  `version` int,\n  `account_id` string,"),
            "{d}"
        );
        assert!(d.contains("`packets` bigint"), "{d}");
        assert!(d.contains("PARTITIONED BY (`date` string)"), "{d}");
        assert!(d.contains("'skip.header.line.count'='1'"), "{d}");
        assert!(d.contains("'projection.date.format'='yyyy/MM/dd'"), "{d}");
        assert!(d.contains(
            "'storage.location.template'='s3://b/p/AWSLogs/123456789012/vpcflowlogs/us-east-1/${date}'"
        ));
        assert!(d.contains("FIELDS TERMINATED BY ' '"));
        let v = spec(&f, Layout::default()).duckdb();
        assert!(
            v.contains(
                "read_csv('s3://b/p/AWSLogs/123456789012/vpcflowlogs/us-east-1/**/*.log.gz'"
            ),
            "{v}"
        );
        assert!(v.contains("'log_status': 'VARCHAR'"), "{v}");
    }

    #[test]
    fn hive_parquet_hourly_layout() {
        let f = RecordFormat::parse("${version} ${traffic-path} ${bytes}").unwrap();
        let l = Layout {
            hive: true,
            per_hour: true,
            parquet: true,
        };
        let d = spec(&f, l).athena();
        assert!(
            d.contains(
                "PARTITIONED BY (`year` string, `month` string, `day` string, `hour` string)"
            ),
            "{d}"
        );
        assert!(d.contains("ParquetHiveSerDe"));
        assert!(!d.contains("skip.header"));
        assert!(d.contains("LOCATION 's3://b/p/AWSLogs/aws-account-id=123456789012/aws-service=vpcflowlogs/aws-region=us-east-1/'"));
        assert!(d.contains("'projection.hour.range'='0,23'"));
        assert!(d.contains("`traffic_path` int"));
        let v = spec(&f, l).duckdb();
        assert!(v.contains("read_parquet('s3://b/p/AWSLogs/aws-account-id=123456789012/aws-service=vpcflowlogs/aws-region=us-east-1/**/*.log.parquet', hive_partitioning = true)"), "{v}");
        let hourly_text = spec(
            &f,
            Layout {
                per_hour: true,
                ..Layout::default()
            },
        )
        .athena();
        assert!(hourly_text.contains("'projection.date.format'='yyyy/MM/dd/HH'"));
        assert!(hourly_text.contains("'projection.date.interval.unit'='HOURS'"));
    }

    #[test]
    fn roots_of_arns() {
        assert_eq!(root_of_arn("arn:aws:s3:::b").as_deref(), Some("s3://b/"));
        assert_eq!(
            root_of_arn("arn:aws:s3:::b/x/y/").as_deref(),
            Some("s3://b/x/y/")
        );
        assert_eq!(root_of_arn("b"), None);
    }
}
