//! `flowlog logs`: reads the CloudWatch Logs events that delivery keeps in the embedded store
//! (`<data-dir>/cwl/events.db`, used when there is no `[cloudwatch_logs]` section):
//! list groups and streams, get a stream's events, tail a group, filter by text and time.

use anyhow::bail;
use clap::{Args as ClapArgs, Subcommand};
use flowlog_delivery::cwl::local::{format_ms, parse_time, LocalLogs, Query, StoredEvent};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(ClapArgs)]
pub struct Args {
    /// Data directory of `flowlog serve` [default: the config's data_dir, or ./.flowlog].
    #[arg(long, env = "FLOWLOG_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// The server's config file (for its data_dir).
    #[arg(long, env = "FLOWLOG_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Print one JSON object per line (AWS field names) instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: LogsCommand,
}

#[derive(ClapArgs)]
struct Range {
    /// Only events at or after this time: Unix seconds, RFC 3339, or an age (15m, 2h, 7d).
    #[arg(long)]
    start: Option<String>,
    /// Only events before this time (same forms as --start).
    #[arg(long)]
    end: Option<String>,
}

#[derive(Subcommand)]
enum LogsCommand {
    /// List log groups.
    Groups,
    /// List the streams of a group with their event counts.
    Streams {
        /// Log group name.
        #[arg(long)]
        group: String,
    },
    /// Events of one stream, oldest first (like GetLogEvents).
    Get {
        /// Log group name.
        #[arg(long)]
        group: String,
        /// Log stream name (`<eni-id>-all`).
        #[arg(long)]
        stream: String,
        #[command(flatten)]
        range: Range,
        /// At most this many events.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// The newest events of a group (or one stream); --follow keeps printing new ones.
    Tail {
        /// Log group name.
        #[arg(long)]
        group: String,
        /// Only this stream (`<eni-id>-all`).
        #[arg(long)]
        stream: Option<String>,
        /// How many of the newest events to print first.
        #[arg(long, short = 'n', default_value_t = 20)]
        lines: usize,
        /// Keep printing new events as they arrive (Ctrl-C stops).
        #[arg(long, short = 'f')]
        follow: bool,
    },
    /// Events of a group whose message contains every term of --pattern (like FilterLogEvents).
    Filter {
        /// Log group name.
        #[arg(long)]
        group: String,
        /// Only this stream (`<eni-id>-all`).
        #[arg(long)]
        stream: Option<String>,
        /// Space-separated terms, all of which must appear (e.g. "REJECT 443").
        #[arg(long)]
        pattern: Option<String>,
        #[command(flatten)]
        range: Range,
        #[arg(long)]
        limit: Option<usize>,
    },
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn times(r: &Range) -> anyhow::Result<(Option<i64>, Option<i64>)> {
    let now = now_ms();
    let p = |s: &Option<String>| {
        s.as_deref()
            .map(|s| parse_time(s, now))
            .transpose()
            .map_err(anyhow::Error::msg)
    };
    Ok((p(&r.start)?, p(&r.end)?))
}

fn print(e: &StoredEvent, json: bool, with_stream: bool) {
    if json {
        let v = serde_json::json!({
            "logGroupName": e.group,
            "logStreamName": e.stream,
            "timestamp": e.timestamp,
            "ingestionTime": e.ingestion_time,
            "message": e.message,
        });
        println!("{v}");
    } else if with_stream {
        println!("{} {} {}", format_ms(e.timestamp), e.stream, e.message);
    } else {
        println!("{} {}", format_ms(e.timestamp), e.message);
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let (data_dir, _) =
        crate::config::Config::client_data_dir(args.data_dir.as_deref(), args.config.as_deref())?;
    let db = data_dir.join("cwl").join("events.db");
    let Some(store) = LocalLogs::open_existing(&data_dir).map_err(|e| {
        let denied = std::fs::OpenOptions::new().write(true).open(&db).is_err()
            || e.to_string().contains("readonly");
        if denied {
            anyhow::anyhow!(
                "cannot open {} for reading and writing ({e}): it belongs to the user that ran `flowlog serve` (root after `sudo flowlog serve`); run `sudo flowlog logs ...`",
                db.display()
            )
        } else {
            anyhow::anyhow!("cannot open the log store {}: {e}", db.display())
        }
    })?
    else {
        bail!(
            "no CloudWatch Logs events in {} (nothing delivered yet, or a [cloudwatch_logs] section sends events to CloudWatch Logs)",
            data_dir.display()
        );
    };
    let known = |group: &str| -> anyhow::Result<()> {
        if store.groups()?.iter().any(|g| g == group) {
            Ok(())
        } else {
            bail!("ResourceNotFoundException: The specified log group does not exist: {group}")
        }
    };
    match args.command {
        LogsCommand::Groups => {
            for g in store.groups()? {
                if args.json {
                    println!("{}", serde_json::json!({ "logGroupName": g }));
                } else {
                    println!("{g}");
                }
            }
        }
        LogsCommand::Streams { group } => {
            known(&group)?;
            for (s, created, count) in store.streams(&group)? {
                if args.json {
                    println!(
                        "{}",
                        serde_json::json!({ "logStreamName": s, "creationTime": created, "events": count })
                    );
                } else {
                    println!("{s}\t{}\t{count}", format_ms(created));
                }
            }
        }
        LogsCommand::Get {
            group,
            stream,
            range,
            limit,
        } => {
            known(&group)?;
            let (start_ms, end_ms) = times(&range)?;
            let q = Query {
                group: Some(group),
                stream: Some(stream),
                start_ms,
                end_ms,
                limit,
                ..Query::default()
            };
            let stream_name = q.stream.clone().unwrap_or_default();
            let group_name = q.group.clone().unwrap_or_default();
            if !store
                .streams(&group_name)?
                .iter()
                .any(|(s, _, _)| *s == stream_name)
            {
                bail!("ResourceNotFoundException: The specified log stream does not exist: {stream_name} (in group {group_name}; list them with `flowlog logs streams --group {group_name}`)");
            }
            for e in store.events(&q)? {
                print(&e, args.json, false);
            }
        }
        LogsCommand::Filter {
            group,
            stream,
            pattern,
            range,
            limit,
        } => {
            known(&group)?;
            let (start_ms, end_ms) = times(&range)?;
            let q = Query {
                group: Some(group),
                stream,
                start_ms,
                end_ms,
                filter: pattern,
                limit,
                ..Query::default()
            };
            for e in store.events(&q)? {
                print(&e, args.json, true);
            }
        }
        LogsCommand::Tail {
            group,
            stream,
            lines,
            follow,
        } => {
            known(&group)?;
            let q = Query {
                group: Some(group.clone()),
                stream: stream.clone(),
                ..Query::default()
            };
            let all = store.events(&q)?;
            for e in &all[all.len().saturating_sub(lines)..] {
                print(e, args.json, true);
            }
            if follow {
                let mut last = store.max_id()?;
                loop {
                    std::thread::sleep(Duration::from_millis(500));
                    let q = Query {
                        group: Some(group.clone()),
                        stream: stream.clone(),
                        after_id: Some(last),
                        ..Query::default()
                    };
                    for e in store.events(&q)? {
                        last = last.max(e.id);
                        print(&e, args.json, true);
                    }
                }
            }
        }
    }
    Ok(())
}
