//! Routing: the records of one drained window → every flow log covering the record's ENI,
//! filtered by that flow log's `TrafficType`, rendered in that flow log's format.
//!
//! S3 output is per flow log (one object stream per flow log). CloudWatch Logs output is per
//! (log group, ENI): AWS writes one combined stream `<eni-id>-all` per ENI per group, shared by
//! every flow log of that ENI targeting the group. Our choice for overlapping flow logs (ALL +
//! ACCEPT on one ENI and one group): a record is sent **once per distinct line**, so an ACCEPT
//! record kept by both flow logs appears once, while an ACCEPT-only and a REJECT-only flow log
//! together give a stream with all traffic. Two flow logs with different formats produce two
//! different lines and both are kept (each flow log delivers its own records).
//!
//! Firehose output is per flow log, as for S3: the flow log's lines, one Firehose record each.

use crate::target::{Destination, FlowLogTarget};
use flowlog_model::FlowRecord;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// Record lines for one S3 flow log; each with the record's `end` (selects the file window).
#[derive(Debug, Clone)]
pub struct S3Lines {
    pub target: Arc<FlowLogTarget>,
    pub lines: Vec<(u64, String)>,
}

/// Record lines for one Firehose flow log; each with the record's `end` (selects the window).
#[derive(Debug, Clone)]
pub struct FirehoseLines {
    pub target: Arc<FlowLogTarget>,
    pub lines: Vec<(u64, String)>,
}

/// The stream of one ENI in one log group.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct StreamKey {
    pub account_id: String,
    pub region: String,
    pub group: String,
    pub stream: String,
}

/// One CloudWatch Logs event: the record's `start` in milliseconds and its line.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Event {
    pub timestamp: i64,
    pub message: String,
}

/// Events for one (group, ENI) stream and the flow logs that contributed.
#[derive(Debug, Clone)]
pub struct CwlEvents {
    pub key: StreamKey,
    /// Role of the lowest flow log id targeting this stream (see module docs).
    pub role_arn: String,
    pub flow_log_ids: Vec<String>,
    pub events: Vec<Event>,
    /// Some record of the batch carried traffic (not only NODATA). A stream is created by
    /// its first traffic, as AWS creates it (spec §6, scenario 71).
    pub has_traffic: bool,
}

/// The routed output of one batch of records.
#[derive(Debug, Default)]
pub struct Routed {
    pub s3: Vec<S3Lines>,
    pub cwl: Vec<CwlEvents>,
    pub firehose: Vec<FirehoseLines>,
    /// Records whose ENI no flow log covers.
    pub unrouted: u64,
}

/// Active targets per ENI, as handed over by the control plane.
#[derive(Debug, Default, Clone)]
pub struct Router {
    by_eni: HashMap<String, Vec<Arc<FlowLogTarget>>>,
}

impl Router {
    /// `targets`: (ENI id, flow log covering it). A flow log covering many ENIs appears once
    /// per ENI.
    pub fn new(targets: impl IntoIterator<Item = (String, FlowLogTarget)>) -> Router {
        let mut shared: HashMap<String, Arc<FlowLogTarget>> = HashMap::new();
        let mut by_eni: HashMap<String, Vec<Arc<FlowLogTarget>>> = HashMap::new();
        for (eni, t) in targets {
            let t = shared
                .entry(t.flow_log_id.clone())
                .or_insert_with(|| Arc::new(t))
                .clone();
            let list = by_eni.entry(eni).or_default();
            if !list.iter().any(|x| x.flow_log_id == t.flow_log_id) {
                list.push(t);
            }
        }
        for list in by_eni.values_mut() {
            list.sort_by(|a, b| a.flow_log_id.cmp(&b.flow_log_id));
        }
        Router { by_eni }
    }

    pub fn targets_of(&self, eni: &str) -> &[Arc<FlowLogTarget>] {
        self.by_eni.get(eni).map(Vec::as_slice).unwrap_or(&[])
    }

    pub fn route(&self, records: &[FlowRecord]) -> Routed {
        let mut out = Routed::default();
        let mut s3: BTreeMap<String, S3Lines> = BTreeMap::new();
        let mut firehose: BTreeMap<String, FirehoseLines> = BTreeMap::new();
        struct Acc {
            role_arn: String,
            ids: BTreeSet<String>,
            events: BTreeSet<Event>,
            has_traffic: bool,
        }
        let mut cwl: BTreeMap<StreamKey, Acc> = BTreeMap::new();
        for r in records {
            let targets = self.targets_of(&r.interface_id);
            if targets.is_empty() {
                out.unrouted += 1;
                continue;
            }
            for t in targets {
                if !t.traffic_type.keeps(r.action()) {
                    continue;
                }
                let line = t.format.line(r);
                match &t.destination {
                    Destination::S3 { .. } => s3
                        .entry(t.flow_log_id.clone())
                        .or_insert_with(|| S3Lines {
                            target: t.clone(),
                            lines: Vec::new(),
                        })
                        .lines
                        .push((r.end, line)),
                    Destination::Firehose { .. } => firehose
                        .entry(t.flow_log_id.clone())
                        .or_insert_with(|| FirehoseLines {
                            target: t.clone(),
                            lines: Vec::new(),
                        })
                        .lines
                        .push((r.end, line)),
                    Destination::CloudWatchLogs { group, role_arn } => {
                        let key = StreamKey {
                            account_id: t.account_id.clone(),
                            region: t.region.clone(),
                            group: group.clone(),
                            stream: format!("{}-all", r.interface_id),
                        };
                        let acc = cwl.entry(key).or_insert_with(|| Acc {
                            role_arn: role_arn.clone(),
                            ids: BTreeSet::new(),
                            events: BTreeSet::new(),
                            has_traffic: false,
                        });
                        acc.has_traffic |= r.status != flowlog_model::LogStatus::NoData;
                        acc.ids.insert(t.flow_log_id.clone());
                        acc.events.insert(Event {
                            timestamp: (r.start as i64).saturating_mul(1000),
                            message: line,
                        });
                    }
                }
            }
        }
        out.s3 = s3.into_values().collect();
        out.firehose = firehose.into_values().collect();
        out.cwl = cwl
            .into_iter()
            .map(|(key, a)| CwlEvents {
                key,
                role_arn: a.role_arn,
                flow_log_ids: a.ids.into_iter().collect(),
                events: a.events.into_iter().collect(),
                has_traffic: a.has_traffic,
            })
            .collect();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowlog_model::record::{RecordFormat, Traffic};
    use flowlog_model::{Action, LogStatus, TrafficType};

    pub(crate) fn rec(eni: &str, action: Option<Action>, start: u64) -> FlowRecord {
        FlowRecord {
            account_id: "123456789012".into(),
            interface_id: eni.into(),
            start,
            end: start + 10,
            traffic: action.map(|action| Traffic {
                src: "10.0.0.1".parse().unwrap(),
                dst: "10.0.0.2".parse().unwrap(),
                src_port: 1000,
                dst_port: 22,
                protocol: 6,
                packets: 1,
                bytes: 60,
                action,
                tcp_flags: 0,
                direction: None,
            }),
            status: if action.is_some() {
                LogStatus::Ok
            } else {
                LogStatus::NoData
            },
            context: None,
        }
    }

    fn target(id: &str, tt: TrafficType, dest: Destination) -> FlowLogTarget {
        FlowLogTarget {
            flow_log_id: id.into(),
            account_id: "123456789012".into(),
            region: "us-east-1".into(),
            traffic_type: tt,
            format: RecordFormat::default(),
            destination: dest,
            options: Default::default(),
        }
    }

    fn cwl(g: &str) -> Destination {
        Destination::CloudWatchLogs {
            group: g.into(),
            role_arn: "arn:aws:iam::123456789012:role/fl".into(),
        }
    }

    #[test]
    fn traffic_type_filters_and_nodata_always_passes() {
        let s3 = Destination::S3 {
            bucket: "b".into(),
            prefix: "".into(),
        };
        let r = Router::new([("eni-1".to_string(), target("fl-a", TrafficType::Reject, s3))]);
        let routed = r.route(&[
            rec("eni-1", Some(Action::Accept), 100),
            rec("eni-1", Some(Action::Reject), 100),
            rec("eni-1", None, 100),
            rec("eni-9", Some(Action::Reject), 100),
        ]);
        assert_eq!(routed.unrouted, 1);
        assert_eq!(routed.s3.len(), 1);
        let lines: Vec<&str> = routed.s3[0].lines.iter().map(|l| l.1.as_str()).collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].ends_with("REJECT OK"));
        assert!(lines[1].ends_with("NODATA"));
    }

    #[test]
    fn one_combined_stream_per_eni_and_group_without_duplicates() {
        let r = Router::new([
            (
                "eni-1".to_string(),
                target("fl-all", TrafficType::All, cwl("g")),
            ),
            (
                "eni-1".to_string(),
                target("fl-acc", TrafficType::Accept, cwl("g")),
            ),
            (
                "eni-1".to_string(),
                target("fl-rej", TrafficType::Reject, cwl("g")),
            ),
            (
                "eni-2".to_string(),
                target("fl-acc", TrafficType::Accept, cwl("g")),
            ),
            (
                "eni-1".to_string(),
                target("fl-other", TrafficType::Accept, cwl("h")),
            ),
        ]);
        let routed = r.route(&[
            rec("eni-1", Some(Action::Accept), 100),
            rec("eni-1", Some(Action::Reject), 101),
            rec("eni-2", Some(Action::Reject), 102),
        ]);
        let streams: Vec<(String, String, usize)> = routed
            .cwl
            .iter()
            .map(|c| (c.key.group.clone(), c.key.stream.clone(), c.events.len()))
            .collect();
        assert_eq!(
            streams,
            vec![
                ("g".into(), "eni-1-all".into(), 2),
                ("h".into(), "eni-1-all".into(), 1)
            ]
        );
        assert_eq!(
            routed.cwl[0].flow_log_ids,
            vec!["fl-acc", "fl-all", "fl-rej"]
        );
        assert_eq!(routed.cwl[0].events[0].timestamp, 100_000);
    }

    #[test]
    fn a_batch_of_nodata_only_is_marked_without_traffic() {
        let r = Router::new([(
            "eni-1".to_string(),
            target("fl-all", TrafficType::All, cwl("g")),
        )]);
        assert!(!r.route(&[rec("eni-1", None, 100)]).cwl[0].has_traffic);
        let both = r.route(&[
            rec("eni-1", None, 100),
            rec("eni-1", Some(Action::Accept), 160),
        ]);
        assert!(both.cwl[0].has_traffic);
    }

    #[test]
    fn firehose_lines_per_flow_log_in_its_format() {
        let fh = Destination::Firehose {
            stream_name: "st".into(),
            region: "us-east-1".into(),
            account: "123456789012".into(),
            role_arn: None,
            cross_account_role: None,
        };
        let mut custom = target("fl-b", TrafficType::All, fh.clone());
        custom.format = RecordFormat::parse("${srcaddr} ${action}").unwrap();
        let r = Router::new([
            ("eni-1".to_string(), target("fl-a", TrafficType::Accept, fh)),
            ("eni-1".to_string(), custom),
        ]);
        let routed = r.route(&[
            rec("eni-1", Some(Action::Accept), 100),
            rec("eni-1", Some(Action::Reject), 101),
        ]);
        assert!(routed.s3.is_empty() && routed.cwl.is_empty());
        let got: Vec<(&str, Vec<&str>)> = routed
            .firehose
            .iter()
            .map(|f| {
                (
                    f.target.flow_log_id.as_str(),
                    f.lines.iter().map(|l| l.1.as_str()).collect(),
                )
            })
            .collect();
        assert_eq!(got[0].0, "fl-a");
        assert_eq!(got[0].1.len(), 1);
        assert!(got[0].1[0].starts_with(
            "2 123456789012 eni-1 10.0.0.1 10.0.0.2 1000 22 6 1 60 100 110 ACCEPT OK"
        ));
        assert_eq!(got[1], ("fl-b", vec!["10.0.0.1 ACCEPT", "10.0.0.1 REJECT"]));
        assert_eq!(
            routed.firehose[0].lines[0].0, 110,
            "the record's end picks the window"
        );
    }
}
