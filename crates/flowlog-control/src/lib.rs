//! The control plane's side of agent sync, on top of the store: registers the inventory an
//! agent reports (discovered interfaces or its inventory file) as VPCs, subnets and ENIs,
//! records delivery status changes, and answers with the interfaces to capture. Used in
//! process by `flowlog serve` and over HTTP (`POST /agent/v1/sync`) by `flowlog agent`.
//!
//! Cost of one sync (a thousand agents sync every 2 s): proportional to the host's ENIs and to
//! what changed, never to the whole table.
//! - What the agent reported (inventory file, interfaces, capture states) is fingerprinted;
//!   the inventory is parsed, checked and written only when the fingerprint differs from the
//!   last one written for that (account, host).
//! - The store's [`Store::change_version`] is read next (one row). An agent that sends the
//!   cursor of the answer it holds and whose cursor is still current gets `unchanged`; an
//!   agent that sends none (older agents, the in-process agent) gets the answer cached at
//!   that version. Only otherwise is [`Store::host_view`] read: the host's ENIs, their VPCs
//!   and subnets, and the flow logs on them.
//! - The version is read *before* the view: a write committing in between makes the cached
//!   answer look older than it is (one extra recompute later), never newer.
//! - Delivery statuses are applied on every sync that carries them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use flowlog_agent::protocol::InterfaceSpec;
use flowlog_agent::{
    Assignment, CaptureReport, CaptureState, ControlPlane, SyncRequest, SyncResponse, TargetSpec,
};
use flowlog_inventory::{Binding, Inventory};
use flowlog_store::{HostView, Store, StoreError};
use hashlink::LruCache;
use sha2::Digest;

pub use flowlog_store::HOST_TAG;

/// Tag carrying an ENI's capture state as its agent last reported it (`capturing`,
/// `no-privilege`, `interface-missing`, `namespace-missing`, `open-error`).
pub const CAPTURE_TAG: &str = "flowlog:capture";
/// Tag carrying why an ENI is not captured, with the fix (absent while capturing).
pub const CAPTURE_REASON_TAG: &str = "flowlog:capture-reason";

/// Hosts whose last written report is remembered (32 bytes each plus the key). Keyed by
/// host names callers send, so bounded; past it the least recently syncing host is forgotten
/// and its next sync writes its inventory again.
const MAX_REMEMBERED_HOSTS: usize = 16_384;
/// Full answers kept for agents that send no cursor (a few KiB to a few hundred KiB each).
const MAX_CACHED_ANSWERS: usize = 1_024;
/// Cursors are `<CURSOR_PREFIX><change version>`. Bump the prefix when the answer computed
/// from the same stored state changes (a new field), so agents holding an old one refetch.
const CURSOR_PREFIX: &str = "v1.";

/// A sync named an ENI that another host captures (tag `flowlog:host`).
#[derive(Debug, thiserror::Error)]
#[error("network interface {eni} is captured by host {owner:?}; host {host:?} may not report it (delete the ENI or change its flowlog:host tag to move it)")]
pub struct HostConflict {
    pub eni: String,
    pub owner: String,
    pub host: String,
}

/// Why a sync failed. `Inventory` and `HostConflict` are the agent's mistakes (4xx);
/// `Store` is whatever the store says (its own mapping decides 4xx, 503 or 500).
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("invalid inventory file: {0}")]
    Inventory(#[from] flowlog_inventory::file::FileError),
    #[error(transparent)]
    HostConflict(#[from] HostConflict),
    #[error(transparent)]
    Store(#[from] StoreError),
}

struct Caches {
    /// (account, host) → fingerprint of the last report whose inventory was written.
    written: LruCache<(String, String), [u8; 32]>,
    /// (account, host) → the last full answer and the change version it was computed at.
    answers: LruCache<(String, String), (i64, Arc<SyncResponse>)>,
}

pub struct LocalControl {
    store: Arc<dyn Store>,
    account: String,
    region: String,
    caches: Mutex<Caches>,
}

impl LocalControl {
    pub fn new(store: Arc<dyn Store>, account: &str, region: &str) -> LocalControl {
        Self::with_cache_sizes(
            store,
            account,
            region,
            MAX_REMEMBERED_HOSTS,
            MAX_CACHED_ANSWERS,
        )
    }

    fn with_cache_sizes(
        store: Arc<dyn Store>,
        account: &str,
        region: &str,
        hosts: usize,
        answers: usize,
    ) -> LocalControl {
        LocalControl {
            store,
            account: account.into(),
            region: region.into(),
            caches: Mutex::new(Caches {
                written: LruCache::new(hosts),
                answers: LruCache::new(answers),
            }),
        }
    }

    fn caches(&self) -> std::sync::MutexGuard<'_, Caches> {
        // Only caches: a panic elsewhere while holding the lock leaves them usable.
        self.caches.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One sync for an agent acting for `account`.
    pub fn sync_for(&self, account: &str, req: &SyncRequest) -> Result<SyncResponse, SyncError> {
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
        let key = (account.to_string(), req.host.clone());
        let reported = fingerprint(req);
        let written = self.caches().written.get(&key) == Some(&reported);
        if !written {
            let inv = self.inventory(account, req)?;
            self.check_hosts(account, &req.host, &inv)?;
            // The store refuses (ForeignResource) any ID owned by another account.
            self.store
                .register(account, &inv.vpcs, &inv.subnets, &inv.enis)?;
            let mut c = self.caches();
            c.written.insert(key.clone(), reported);
            c.answers.remove(&key);
        }

        // Before the view (see the module comment).
        let version = self.store.change_version()?;
        if let Some(v) = version {
            let current = format!("{CURSOR_PREFIX}{v}");
            if req.cursor.as_deref() == Some(current.as_str()) {
                return Ok(SyncResponse {
                    assignments: Vec::new(),
                    cursor: Some(current),
                    unchanged: true,
                });
            }
            if req.cursor.is_none() {
                if let Some((at, answer)) = self.caches().answers.get(&key) {
                    if *at == v {
                        return Ok(SyncResponse::clone(answer));
                    }
                }
            }
        }

        let view = self.store.host_view(account, &req.host)?;
        let answer = SyncResponse {
            assignments: self.assignments(&view),
            cursor: version.map(|v| format!("{CURSOR_PREFIX}{v}")),
            unchanged: false,
        };
        if let (Some(v), None) = (version, &req.cursor) {
            self.caches()
                .answers
                .insert(key, (v, Arc::new(answer.clone())));
        }
        Ok(answer)
    }

    /// The inventory the agent's report describes: its inventory file, or the interfaces of
    /// its own namespace in the default layout; with presence, host and capture state.
    fn inventory(&self, account: &str, req: &SyncRequest) -> Result<Inventory, SyncError> {
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
        Ok(inv)
    }

    fn assignments(&self, view: &HostView) -> Vec<Assignment> {
        let specs = interface_specs(view);
        flowlog_inventory::desired::monitored(&view.enis, &view.flow_logs)
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
            .collect()
    }

    /// An ENI another host captures stays that host's: a sync may not re-home it (which
    /// would silently stop the other host's capture). Checked only when the inventory is
    /// about to be written, reading only the ENIs it names.
    fn check_hosts(&self, account: &str, host: &str, inv: &Inventory) -> Result<(), SyncError> {
        if inv.enis.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = inv.enis.iter().map(|e| e.id.clone()).collect();
        let stored = self.store.eni_hosts(account, &ids)?;
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

/// SHA-256 of everything of a report the written inventory is derived from (the account,
/// region and host are the cache key and constant): the inventory file, the interfaces, and of
/// the capture reports only what `note_capture` uses (ENI, state, reason; not the packet
/// counters, which change on every sync). serde_json of the same values is the same bytes,
/// and the agent sends interfaces and capture reports in a stable order.
fn fingerprint(req: &SyncRequest) -> [u8; 32] {
    let capture: Vec<(&str, &str, &str)> = req
        .capture
        .iter()
        .map(|r| (r.eni_id.as_str(), r.state.as_str(), r.reason.as_str()))
        .collect();
    // Serializing these plain values cannot fail; an error would only make the report look
    // changed (one extra write), so it is not worth an error path.
    let bytes =
        serde_json::to_vec(&(&req.inventory, &req.interfaces, &capture)).unwrap_or_default();
    sha2::Sha256::digest(&bytes).into()
}

/// Reflects the agent's capture reports on its ENIs: the tags `flowlog:capture` (state) and
/// `flowlog:capture-reason` (error and fix), visible in DescribeNetworkInterfaces; an ENI whose
/// interface or namespace is missing is `available` (AWS: detached), one that exists but cannot
/// be captured stays `in-use`. (Its flow logs' `DeliverLogsStatus` comes from the agent's
/// status reports.)
pub fn note_capture(enis: &mut [flowlog_model::NetworkInterface], reports: &[CaptureReport]) {
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
        Ok(self.sync_for(&self.account, req)?)
    }
}

/// Per ENI of the view: its VPC, subnet, instance, zone id and the VPC's CIDR, for the
/// records' later fields (issue 12, spec §4.2).
pub fn interface_specs(view: &HostView) -> HashMap<String, InterfaceSpec> {
    view.enis
        .iter()
        .map(|e| {
            let spec = InterfaceSpec {
                vpc_id: Some(e.vpc_id.clone()),
                subnet_id: Some(e.subnet_id.clone()),
                instance_id: e.instance_id.clone(),
                az_id: view
                    .subnets
                    .iter()
                    .find(|s| s.id == e.subnet_id)
                    .and_then(|s| s.availability_zone_id.clone()),
                vpc_cidrs: view
                    .vpcs
                    .iter()
                    .filter(|v| v.id == e.vpc_id)
                    .map(|v| v.cidr_block.clone())
                    .collect(),
            };
            (e.id.clone(), spec)
        })
        .collect()
}

#[cfg(test)]
mod tests;
