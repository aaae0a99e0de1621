//! The control plane's side of agent sync, on top of the store: registers the inventory an
//! agent reports (discovered interfaces or its inventory file) as VPCs, subnets and ENIs,
//! records delivery status changes, and answers with the interfaces to capture. Used in
//! process by `flowlog serve` and over HTTP (`POST /agent/v1/sync`) by `flowlog agent`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use flowlog_agent::protocol::InterfaceSpec;
use flowlog_agent::{
    Assignment, CaptureReport, CaptureState, ControlPlane, SyncRequest, SyncResponse, TargetSpec,
};
use flowlog_inventory::{Binding, Inventory};
use flowlog_store::Store;

/// Tag naming the host whose agent captures an ENI; ENIs without it are captured by every
/// agent that has the bound interface.
pub const HOST_TAG: &str = "flowlog:host";
/// Tag carrying an ENI's capture state as its agent last reported it (`capturing`,
/// `no-privilege`, `interface-missing`, `namespace-missing`, `open-error`).
pub const CAPTURE_TAG: &str = "flowlog:capture";
/// Tag carrying why an ENI is not captured, with the fix (absent while capturing).
pub const CAPTURE_REASON_TAG: &str = "flowlog:capture-reason";

/// Hosts whose last inventory is remembered (to write only on change).
const MAX_REMEMBERED_HOSTS: usize = 10_000;

/// A sync named an ENI that another host captures (tag `flowlog:host`).
#[derive(Debug, thiserror::Error)]
#[error("network interface {eni} is captured by host {owner:?}; host {host:?} may not report it (delete the ENI or change its flowlog:host tag to move it)")]
pub struct HostConflict {
    pub eni: String,
    pub owner: String,
    pub host: String,
}

pub struct LocalControl {
    store: Arc<dyn Store>,
    account: String,
    region: String,
    /// Last inventory registered per (account, host), to write only on change.
    registered: Mutex<HashMap<(String, String), Inventory>>,
}

impl LocalControl {
    pub fn new(store: Arc<dyn Store>, account: &str, region: &str) -> LocalControl {
        LocalControl {
            store,
            account: account.into(),
            region: region.into(),
            registered: Mutex::new(HashMap::new()),
        }
    }

    /// One sync for an agent acting for `account`.
    pub fn sync_for(&self, account: &str, req: &SyncRequest) -> anyhow::Result<SyncResponse> {
        for s in &req.statuses {
            if let Some(status) = s.status() {
                // Only this account's flow logs: a report naming another account's ID
                // changes nothing.
                self.store.set_deliver_status(
                    account,
                    &s.flow_log_id,
                    status,
                    s.message.as_deref(),
                )?;
            }
        }
        let mut inv = match &req.inventory {
            Some(text) => flowlog_inventory::file::parse(text, account, &self.region)?,
            None => {
                let own: Vec<_> = req
                    .interfaces
                    .iter()
                    .filter(|i| i.netns.is_none())
                    .cloned()
                    .collect();
                flowlog_inventory::derive::default_inventory_for_host(
                    account,
                    &self.region,
                    &req.host,
                    &own,
                )
            }
        };
        for eni in &mut inv.enis {
            let present = Binding::of(eni).is_some_and(|b| {
                req.interfaces
                    .iter()
                    .any(|i| i.netns == b.netns && i.name == b.ifname)
            });
            eni.status = if present { "in-use" } else { "available" }.to_string();
            if !req.host.is_empty() {
                eni.tags.push((HOST_TAG.to_string(), req.host.clone()));
            }
        }
        note_capture(&mut inv.enis, &req.capture);
        let key = (account.to_string(), req.host.clone());
        let changed = self
            .registered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            != Some(&inv);
        if changed {
            {
                // Only a cache that spares unchanged writes: keep it bounded whatever host
                // names callers send.
                let mut registered = self.registered.lock().unwrap_or_else(|e| e.into_inner());
                if registered.len() >= MAX_REMEMBERED_HOSTS {
                    registered.clear();
                }
            }
            self.check_hosts(account, &req.host, &inv)?;
            // The store refuses (ForeignResource) any ID owned by another account.
            self.store
                .register(account, &inv.vpcs, &inv.subnets, &inv.enis)?;
            self.registered
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key, inv);
        }

        let enis: Vec<_> = self
            .store
            .all_network_interfaces()?
            .into_iter()
            .filter(|e| e.account_id == account)
            .filter(|e| {
                e.tags
                    .iter()
                    .find(|(k, _)| k == HOST_TAG)
                    .is_none_or(|(_, h)| *h == req.host)
            })
            .collect();
        let flow_logs: Vec<_> = self
            .store
            .all_flow_logs()?
            .into_iter()
            .filter(|f| f.account_id == account)
            .collect();
        let specs = interface_specs(self.store.as_ref(), account, &enis)?;
        let assignments = flowlog_inventory::desired::monitored(&enis, &flow_logs)
            .into_values()
            .map(|m| Assignment {
                interface: specs.get(&m.eni_id).cloned().unwrap_or_default(),
                eni_id: m.eni_id,
                account_id: m.account_id,
                netns: m.binding.netns,
                ifname: m.binding.ifname,
                targets: m
                    .flow_logs
                    .iter()
                    .map(|f| TargetSpec::from_flow_log(f, &self.region))
                    .collect(),
            })
            .collect();
        Ok(SyncResponse { assignments })
    }
}

/// Reflects the agent's capture reports on its ENIs: the tags `flowlog:capture` (state) and
/// `flowlog:capture-reason` (error and fix), visible in DescribeNetworkInterfaces; an ENI whose
/// interface or namespace is missing is `available` (AWS: detached), one that exists but cannot
/// be captured stays `in-use`. (Its flow logs' `DeliverLogsStatus` comes from the agent's
/// status reports.)
fn note_capture(enis: &mut [flowlog_model::NetworkInterface], reports: &[CaptureReport]) {
    for eni in enis {
        let Some(r) = reports.iter().find(|r| r.eni_id == eni.id) else {
            continue;
        };
        eni.tags
            .push((CAPTURE_TAG.to_string(), r.state.as_str().to_string()));
        if r.state != CaptureState::Capturing {
            let reason: String = r.reason.chars().take(256).collect();
            eni.tags.push((CAPTURE_REASON_TAG.to_string(), reason));
        }
        if matches!(
            r.state,
            CaptureState::InterfaceMissing | CaptureState::NamespaceMissing
        ) {
            eni.status = "available".to_string();
        }
    }
}

impl ControlPlane for LocalControl {
    fn sync(&self, req: &SyncRequest) -> anyhow::Result<SyncResponse> {
        self.sync_for(&self.account, req)
    }
}

/// Per ENI: its VPC, subnet, instance, zone id and the VPC's CIDR, for the records' later
/// fields (issue 12, spec §4.2).
fn interface_specs(
    store: &dyn Store,
    account: &str,
    enis: &[flowlog_model::NetworkInterface],
) -> anyhow::Result<HashMap<String, InterfaceSpec>> {
    let vpcs = store.vpcs(account)?;
    let subnets = store.subnets(account)?;
    Ok(enis
        .iter()
        .map(|e| {
            let spec = InterfaceSpec {
                vpc_id: Some(e.vpc_id.clone()),
                subnet_id: Some(e.subnet_id.clone()),
                instance_id: e.instance_id.clone(),
                az_id: subnets
                    .iter()
                    .find(|s| s.id == e.subnet_id)
                    .and_then(|s| s.availability_zone_id.clone()),
                vpc_cidrs: vpcs
                    .iter()
                    .filter(|v| v.id == e.vpc_id)
                    .map(|v| v.cidr_block.clone())
                    .collect(),
            };
            (e.id.clone(), spec)
        })
        .collect())
}

impl LocalControl {
    /// An ENI another host captures stays that host's: a sync may not re-home it (which
    /// would silently stop the other host's capture). Checked only when the inventory is
    /// about to be written, so an unchanged sync reads nothing more.
    fn check_hosts(&self, account: &str, host: &str, inv: &Inventory) -> anyhow::Result<()> {
        let stored: HashMap<String, Option<String>> = self
            .store
            .network_interfaces(account)?
            .into_iter()
            .map(|e| {
                let host = e
                    .tags
                    .iter()
                    .find(|(k, _)| k == HOST_TAG)
                    .map(|(_, h)| h.clone());
                (e.id, host)
            })
            .collect();
        for eni in &inv.enis {
            if let Some(Some(owner)) = stored.get(&eni.id) {
                if owner != host {
                    return Err(HostConflict {
                        eni: eni.id.clone(),
                        owner: owner.clone(),
                        host: host.to_string(),
                    }
                    .into());
                }
            }
        }
        Ok(())
    }
}
