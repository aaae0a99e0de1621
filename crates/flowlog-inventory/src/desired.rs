//! Desired state: which interfaces to capture and which flow logs each one feeds. A flow log
//! on a VPC covers every ENI of the VPC, on a subnet every ENI of the subnet, on an ENI that
//! ENI; an ENI is captured once however many flow logs cover it, and only when it is bound
//! to a host interface.

use std::collections::BTreeMap;

use flowlog_model::{FlowLog, NetworkInterface};

use crate::Binding;

/// One interface to capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Monitored {
    pub eni_id: String,
    pub account_id: String,
    pub binding: Binding,
    /// Every flow log covering the ENI, in creation order.
    pub flow_logs: Vec<FlowLog>,
}

/// Interfaces to capture, keyed by ENI ID.
pub fn monitored(enis: &[NetworkInterface], flow_logs: &[FlowLog]) -> BTreeMap<String, Monitored> {
    let mut out = BTreeMap::new();
    for eni in enis {
        let Some(binding) = Binding::of(eni) else {
            continue;
        };
        let covering: Vec<FlowLog> = flow_logs
            .iter()
            .filter(|f| {
                f.account_id == eni.account_id
                    && (f.resource_id == eni.id
                        || f.resource_id == eni.subnet_id
                        || f.resource_id == eni.vpc_id)
            })
            .cloned()
            .collect();
        if covering.is_empty() {
            continue;
        }
        out.insert(
            eni.id.clone(),
            Monitored {
                eni_id: eni.id.clone(),
                account_id: eni.account_id.clone(),
                binding,
                flow_logs: covering,
            },
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowlog_model::{DeliverStatus, Destination, ResourceType, TrafficType};

    fn eni(id: &str, subnet: &str, vpc: &str, bound: bool) -> NetworkInterface {
        NetworkInterface {
            id: id.into(),
            account_id: "a".into(),
            subnet_id: subnet.into(),
            vpc_id: vpc.into(),
            availability_zone: "z".into(),
            description: String::new(),
            private_ip_address: "10.0.0.4".into(),
            mac_address: String::new(),
            security_group_ids: vec![],
            status: "in-use".into(),
            tags: if bound {
                vec![(crate::BINDING_TAG.into(), format!("ns/{id}"))]
            } else {
                vec![]
            },
            instance_id: None,
        }
    }

    fn fl(id: &str, resource: &str) -> FlowLog {
        FlowLog {
            id: id.into(),
            account_id: "a".into(),
            resource_id: resource.into(),
            resource_type: ResourceType::Vpc,
            traffic_type: TrafficType::All,
            destination: Destination::S3 {
                arn: "arn:aws:s3:::b".into(),
                bucket: "b".into(),
                prefix: String::new(),
            },
            log_format: None,
            max_aggregation_interval: None,
            creation_time_ms: 0,
            deliver_status: DeliverStatus::Success,
            deliver_error: None,
            tags: vec![],
            destination_options: None,
        }
    }

    #[test]
    fn coverage_by_vpc_subnet_and_eni() {
        let enis = [
            eni("e1", "s1", "v1", true),
            eni("e2", "s2", "v1", true),
            eni("e3", "s1", "v1", false),
        ];
        let fls = [
            fl("f1", "v1"),
            fl("f2", "s1"),
            fl("f3", "e2"),
            fl("f4", "v9"),
        ];
        let m = monitored(&enis, &fls);
        assert_eq!(m.len(), 2, "unbound e3 is not captured");
        let ids = |e: &str| {
            m[e].flow_logs
                .iter()
                .map(|f| f.id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids("e1"), vec!["f1", "f2"]);
        assert_eq!(ids("e2"), vec!["f1", "f3"]);
        assert!(monitored(&enis, &[]).is_empty());
    }
}
