//! LocalControl on a real SqliteStore in a temporary directory. `Counting` wraps the store to
//! count the reads a sync makes (a test double only in the sense that it counts; every call
//! goes to SQLite).

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

use flowlog_agent::{CaptureReport, CaptureState, StatusReport, SyncRequest};
use flowlog_inventory::discover::HostInterface;
use flowlog_model::{
    DeliverStatus, Destination, FlowLog, NetworkInterface, ResourceType, Subnet, Tags, TrafficType,
    Vpc,
};
use flowlog_store::{
    CreateOutcome, FlowLogPage, FlowLogQuery, HostView, NewFlowLogs, NewNetworkInterface, Result,
    SqliteStore, Store, TokenCheck,
};

use super::*;

const ACCT: &str = "123456789012";
const REGION: &str = "eu-west-1";

#[derive(Default)]
struct Counts {
    host_view: AtomicUsize,
    change_version: AtomicUsize,
    register: AtomicUsize,
    eni_hosts: AtomicUsize,
    whole_table: AtomicUsize,
    /// Bumped by every write that can change desired state, when the inner store keeps no
    /// version of its own.
    writes: AtomicI64,
}

struct Counting {
    inner: SqliteStore,
    n: Counts,
}

impl Counting {
    fn wrote(&self) {
        self.n.writes.fetch_add(1, SeqCst);
    }
}

impl Store for Counting {
    fn create_vpc(&self, vpc: &Vpc) -> Result<()> {
        self.wrote();
        self.inner.create_vpc(vpc)
    }
    fn vpcs(&self, a: &str) -> Result<Vec<Vpc>> {
        self.n.whole_table.fetch_add(1, SeqCst);
        self.inner.vpcs(a)
    }
    fn delete_vpc(&self, a: &str, id: &str) -> Result<()> {
        self.wrote();
        self.inner.delete_vpc(a, id)
    }
    fn create_subnet(&self, s: &Subnet) -> Result<()> {
        self.wrote();
        self.inner.create_subnet(s)
    }
    fn subnets(&self, a: &str) -> Result<Vec<Subnet>> {
        self.n.whole_table.fetch_add(1, SeqCst);
        self.inner.subnets(a)
    }
    fn delete_subnet(&self, a: &str, id: &str) -> Result<()> {
        self.wrote();
        self.inner.delete_subnet(a, id)
    }
    fn create_network_interface(&self, e: &NewNetworkInterface) -> Result<NetworkInterface> {
        self.wrote();
        self.inner.create_network_interface(e)
    }
    fn network_interfaces(&self, a: &str) -> Result<Vec<NetworkInterface>> {
        self.n.whole_table.fetch_add(1, SeqCst);
        self.inner.network_interfaces(a)
    }
    fn delete_network_interface(&self, a: &str, id: &str) -> Result<()> {
        self.wrote();
        self.inner.delete_network_interface(a, id)
    }
    fn create_tags(&self, a: &str, ids: &[String], tags: &Tags) -> Result<()> {
        self.wrote();
        self.inner.create_tags(a, ids, tags)
    }
    fn delete_tags(&self, a: &str, ids: &[String], t: &[(String, Option<String>)]) -> Result<()> {
        self.wrote();
        self.inner.delete_tags(a, ids, t)
    }
    fn check_client_token(&self, a: &str, x: &str, t: &str, f: &str) -> Result<TokenCheck> {
        self.inner.check_client_token(a, x, t, f)
    }
    fn create_flow_logs(&self, r: &NewFlowLogs) -> Result<CreateOutcome> {
        self.wrote();
        self.inner.create_flow_logs(r)
    }
    fn delete_flow_logs(&self, a: &str, ids: &[String]) -> Result<Vec<String>> {
        self.wrote();
        self.inner.delete_flow_logs(a, ids)
    }
    fn describe_flow_logs(&self, q: &FlowLogQuery) -> Result<FlowLogPage> {
        self.inner.describe_flow_logs(q)
    }
    fn set_deliver_status(
        &self,
        a: &str,
        id: &str,
        s: DeliverStatus,
        e: Option<&str>,
    ) -> Result<()> {
        self.inner.set_deliver_status(a, id, s, e)
    }
    fn all_flow_logs(&self) -> Result<Vec<FlowLog>> {
        self.n.whole_table.fetch_add(1, SeqCst);
        self.inner.all_flow_logs()
    }
    fn all_network_interfaces(&self) -> Result<Vec<NetworkInterface>> {
        self.n.whole_table.fetch_add(1, SeqCst);
        self.inner.all_network_interfaces()
    }
    fn register(&self, a: &str, v: &[Vpc], s: &[Subnet], e: &[NetworkInterface]) -> Result<()> {
        self.n.register.fetch_add(1, SeqCst);
        self.wrote();
        self.inner.register(a, v, s, e)
    }
    fn set_network_interface_status(&self, a: &str, id: &str, s: &str) -> Result<()> {
        self.wrote();
        self.inner.set_network_interface_status(a, id, s)
    }
    fn change_version(&self) -> Result<Option<i64>> {
        self.n.change_version.fetch_add(1, SeqCst);
        match self.inner.change_version()? {
            Some(v) => Ok(Some(v)),
            None => Ok(Some(self.n.writes.load(SeqCst))),
        }
    }
    fn host_view(&self, a: &str, host: &str) -> Result<HostView> {
        self.n.host_view.fetch_add(1, SeqCst);
        // The inner store's own (indexed) implementation, not the trait default over the
        // counted whole-table reads.
        self.inner.host_view(a, host)
    }
    fn eni_hosts(&self, a: &str, ids: &[String]) -> Result<HashMap<String, Option<String>>> {
        self.n.eni_hosts.fetch_add(1, SeqCst);
        self.inner.eni_hosts(a, ids)
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<Counting>,
    control: LocalControl,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let inner = SqliteStore::open(&dir.path().join("flowlog.db")).unwrap();
    let store = Arc::new(Counting {
        inner,
        n: Counts::default(),
    });
    let control = LocalControl::new(store.clone(), ACCT, REGION);
    Fixture {
        _dir: dir,
        store,
        control,
    }
}

const INVENTORY: &str = r#"
[[vpc]]
name = "lab"
cidr_block = "10.10.0.0/16"

[[subnet]]
name = "lab-a"
vpc = "lab"
cidr_block = "10.10.1.0/24"
availability_zone_id = "euw1-az1"

[[network_interface]]
subnet = "lab-a"
interface = "veth-a"
netns = "ns1"
private_ip = "10.10.1.10"
instance_id = "i-0123456789abcdef0"

[[network_interface]]
subnet = "lab-a"
interface = "veth-b"
netns = "ns1"
private_ip = "10.10.1.11"
"#;

fn iface(netns: &str, name: &str, ip: [u8; 4]) -> HostInterface {
    HostInterface {
        netns: Some(netns.into()),
        name: name.into(),
        ifindex: 7,
        mac: "02:00:00:00:00:01".into(),
        ipv4: vec![(ip.into(), 24)],
    }
}

fn request(host: &str, interfaces: Vec<HostInterface>) -> SyncRequest {
    SyncRequest {
        host: host.into(),
        interfaces,
        inventory: Some(INVENTORY.into()),
        ..SyncRequest::default()
    }
}

fn both() -> Vec<HostInterface> {
    vec![
        iface("ns1", "veth-a", [10, 10, 1, 10]),
        iface("ns1", "veth-b", [10, 10, 1, 11]),
    ]
}

fn enis(f: &Fixture) -> Vec<NetworkInterface> {
    let mut e = f.store.inner.network_interfaces(ACCT).unwrap();
    e.sort_by(|a, b| a.private_ip_address.cmp(&b.private_ip_address));
    e
}

fn tag<'a>(e: &'a NetworkInterface, k: &str) -> Option<&'a str> {
    e.tags
        .iter()
        .find(|(key, _)| key == k)
        .map(|(_, v)| v.as_str())
}

fn vpc_id(f: &Fixture) -> String {
    f.store.inner.vpcs(ACCT).unwrap()[0].id.clone()
}

fn flow_log_on(f: &Fixture, resource: &str, token: &str) -> String {
    let out = f
        .store
        .create_flow_logs(&NewFlowLogs {
            account_id: ACCT.into(),
            resource_type: ResourceType::Vpc,
            resource_ids: vec![resource.into()],
            traffic_type: TrafficType::All,
            destination: Destination::S3 {
                arn: format!("arn:aws:s3:::b-{token}"),
                bucket: format!("b-{token}"),
                prefix: String::new(),
            },
            log_format: None,
            max_aggregation_interval: None,
            destination_options: None,
            tags: vec![],
            client_token: token.into(),
            fingerprint: format!("fp-{token}"),
            limit_per_resource: None,
            destination_error: None,
            creation_time_ms: 1,
        })
        .unwrap();
    assert!(out.unsuccessful.is_empty(), "{out:?}");
    out.flow_log_ids[0].clone()
}

#[test]
fn registers_on_change_only_with_presence_and_host() {
    let f = fixture();
    let r = f.control.sync_for(ACCT, &request("h1", both())).unwrap();
    assert!(r.assignments.is_empty(), "no flow log yet: {r:?}");
    assert_eq!(f.store.n.register.load(SeqCst), 1);
    let e = enis(&f);
    assert_eq!(e.len(), 2);
    for eni in &e {
        assert_eq!(eni.status, "in-use");
        assert_eq!(tag(eni, HOST_TAG), Some("h1"));
    }
    // same report: nothing written, nothing parsed
    f.control.sync_for(ACCT, &request("h1", both())).unwrap();
    assert_eq!(f.store.n.register.load(SeqCst), 1);
    // veth-b vanishes: written again, now `available`
    f.control
        .sync_for(ACCT, &request("h1", both()[..1].to_vec()))
        .unwrap();
    assert_eq!(f.store.n.register.load(SeqCst), 2);
    let e = enis(&f);
    assert_eq!(e[0].status, "in-use");
    assert_eq!(e[1].status, "available");
    // the whole tables are never read by a sync
    assert_eq!(f.store.n.whole_table.load(SeqCst), 0);
}

#[test]
fn another_hosts_eni_is_refused() {
    let f = fixture();
    f.control.sync_for(ACCT, &request("h1", both())).unwrap();
    let err = f
        .control
        .sync_for(ACCT, &request("h2", both()))
        .unwrap_err();
    match &err {
        SyncError::HostConflict(c) => {
            assert_eq!(c.owner, "h1");
            assert_eq!(c.host, "h2");
        }
        other => panic!("expected HostConflict, got {other:?}"),
    }
    assert!(err.to_string().contains("flowlog:host"), "{err}");
    // h1 keeps them
    assert!(enis(&f).iter().all(|e| tag(e, HOST_TAG) == Some("h1")));
    // and the refusal did not poison h2's cache: it is refused again
    assert!(f.control.sync_for(ACCT, &request("h2", both())).is_err());
}

#[test]
fn bad_inventory_is_the_agents_mistake() {
    let f = fixture();
    let mut req = request("h1", both());
    req.inventory = Some("[[vpc]]\nname = 1\n".into());
    assert!(matches!(
        f.control.sync_for(ACCT, &req),
        Err(SyncError::Inventory(_))
    ));
}

#[test]
fn capture_reports_become_tags_and_status() {
    let f = fixture();
    f.control.sync_for(ACCT, &request("h1", both())).unwrap();
    let ids: Vec<String> = enis(&f).iter().map(|e| e.id.clone()).collect();
    let mut req = request("h1", both());
    req.capture = vec![
        CaptureReport {
            eni_id: ids[0].clone(),
            interface: "veth-a".into(),
            netns: Some("ns1".into()),
            state: CaptureState::NoPrivilege,
            reason: "needs CAP_NET_RAW: run as root".into(),
            since: 1,
            packets: 0,
            bytes: 0,
            kernel_drops: 0,
        },
        CaptureReport {
            eni_id: ids[1].clone(),
            interface: "veth-b".into(),
            netns: Some("ns1".into()),
            state: CaptureState::InterfaceMissing,
            reason: "gone".into(),
            since: 1,
            packets: 0,
            bytes: 0,
            kernel_drops: 0,
        },
    ];
    f.control.sync_for(ACCT, &req).unwrap();
    let e = enis(&f);
    assert_eq!(tag(&e[0], CAPTURE_TAG), Some("no-privilege"));
    assert_eq!(
        tag(&e[0], CAPTURE_REASON_TAG),
        Some("needs CAP_NET_RAW: run as root")
    );
    assert_eq!(e[0].status, "in-use");
    assert_eq!(tag(&e[1], CAPTURE_TAG), Some("interface-missing"));
    assert_eq!(e[1].status, "available");
    // packet counters move on every sync: no write for them
    let writes = f.store.n.register.load(SeqCst);
    req.capture[0].packets = 1234;
    req.capture[0].bytes = 99_999;
    req.capture[0].since = 2;
    f.control.sync_for(ACCT, &req).unwrap();
    assert_eq!(f.store.n.register.load(SeqCst), writes);
    // capturing again: written, the state tag says so
    req.capture[0].state = CaptureState::Capturing;
    req.capture[0].reason.clear();
    f.control.sync_for(ACCT, &req).unwrap();
    assert_eq!(f.store.n.register.load(SeqCst), writes + 1);
    let e = enis(&f);
    assert_eq!(tag(&e[0], CAPTURE_TAG), Some("capturing"));
    // (the old reason tag stays: `register` sets the tags it is given and keeps the others)
}

#[test]
fn statuses_are_applied_on_every_sync() {
    let f = fixture();
    f.control.sync_for(ACCT, &request("h1", both())).unwrap();
    let fl = flow_log_on(&f, &vpc_id(&f), "t1");
    let status = |f: &Fixture| {
        let page = f
            .store
            .describe_flow_logs(&FlowLogQuery {
                account_id: ACCT.into(),
                ids: vec![fl.clone()],
                ..FlowLogQuery::default()
            })
            .unwrap();
        let l = &page.flow_logs[0];
        (l.deliver_status, l.deliver_error.clone())
    };
    for (s, msg) in [("FAILED", Some("Access error")), ("SUCCESS", None)] {
        let mut req = request("h1", both());
        req.statuses = vec![StatusReport {
            flow_log_id: fl.clone(),
            status: s.into(),
            message: msg.map(str::to_string),
        }];
        // unchanged inventory, unchanged version: the status still lands
        f.control.sync_for(ACCT, &req).unwrap();
        let (st, err) = status(&f);
        assert_eq!(st.as_str(), s);
        assert_eq!(err.as_deref(), msg);
    }
    // another account's flow log is not touched
    let mut req = request("h1", both());
    req.statuses = vec![StatusReport {
        flow_log_id: fl.clone(),
        status: "FAILED".into(),
        message: Some("x".into()),
    }];
    f.control.sync_for("210987654321", &req).ok();
    assert_eq!(status(&f).0.as_str(), "SUCCESS");
}

#[test]
fn covered_enis_are_assigned_with_their_context() {
    let f = fixture();
    f.control.sync_for(ACCT, &request("h1", both())).unwrap();
    let vpc = vpc_id(&f);
    let fl = flow_log_on(&f, &vpc, "t1");
    let r = f.control.sync_for(ACCT, &request("h1", both())).unwrap();
    assert_eq!(r.assignments.len(), 2, "{r:?}");
    let a = r.assignments.iter().find(|a| a.ifname == "veth-a").unwrap();
    assert_eq!(a.netns.as_deref(), Some("ns1"));
    assert_eq!(a.targets.len(), 1);
    assert_eq!(a.targets[0].flow_log_id, fl);
    assert_eq!(a.targets[0].region, REGION);
    assert_eq!(a.interface.vpc_id.as_deref(), Some(vpc.as_str()));
    assert_eq!(a.interface.az_id.as_deref(), Some("euw1-az1"));
    assert_eq!(a.interface.vpc_cidrs, vec!["10.10.0.0/16".to_string()]);
    assert_eq!(
        a.interface.instance_id.as_deref(),
        Some("i-0123456789abcdef0")
    );
    // another host with its own inventory in the same VPC is not given h1's ENIs
    let mut other = request("h2", vec![iface("ns2", "veth-c", [10, 10, 1, 20])]);
    other.inventory = Some(
        INVENTORY
            .replace("veth-a", "veth-c")
            .replace("veth-b", "veth-d"),
    );
    let other = SyncRequest {
        inventory: other.inventory.map(|t| {
            t.replace("\"ns1\"", "\"ns2\"")
                .replace("10.10.1.10", "10.10.1.20")
                .replace("10.10.1.11", "10.10.1.21")
        }),
        ..other
    };
    let r2 = f.control.sync_for(ACCT, &other).unwrap();
    // both of its bound ENIs (veth-d is absent, `available`, but still covered)
    let mut names: Vec<&str> = r2.assignments.iter().map(|a| a.ifname.as_str()).collect();
    names.sort();
    assert_eq!(names, ["veth-c", "veth-d"], "{r2:?}");
    assert!(r2
        .assignments
        .iter()
        .all(|a| a.netns.as_deref() == Some("ns2")));
    assert!(f
        .control
        .sync_for(ACCT, &request("h1", both()))
        .unwrap()
        .assignments
        .iter()
        .all(|a| a.netns.as_deref() == Some("ns1")));
}

#[test]
fn unchanged_syncs_read_the_version_only() {
    let f = fixture();
    f.control.sync_for(ACCT, &request("h1", both())).unwrap();
    flow_log_on(&f, &vpc_id(&f), "t1");
    let n = &f.store.n;
    // no cursor (in-process agent, older agents): computed once, then from the cache
    let first = f.control.sync_for(ACCT, &request("h1", both())).unwrap();
    let views = n.host_view.load(SeqCst);
    let second = f.control.sync_for(ACCT, &request("h1", both())).unwrap();
    assert_eq!(first, second);
    assert_eq!(n.host_view.load(SeqCst), views, "cache hit reads no view");
    assert_eq!(n.eni_hosts.load(SeqCst), 1, "host check only when writing");
    assert_eq!(first.assignments.len(), 2);
    assert!(!first.unchanged);
    // with the cursor: a short `unchanged`
    let cursor = first.cursor.clone().expect("a cursor");
    let mut req = request("h1", both());
    req.cursor = Some(cursor.clone());
    let versions = n.change_version.load(SeqCst);
    let short = f.control.sync_for(ACCT, &req).unwrap();
    assert!(short.unchanged && short.assignments.is_empty(), "{short:?}");
    assert_eq!(short.cursor.as_deref(), Some(cursor.as_str()));
    assert_eq!(n.host_view.load(SeqCst), views);
    assert_eq!(n.change_version.load(SeqCst), versions + 1);
    // a write anywhere: recomputed (miss), for both kinds of agent
    let fl2 = flow_log_on(&f, &vpc_id(&f), "t2");
    let full = f.control.sync_for(ACCT, &req).unwrap();
    assert!(!full.unchanged);
    assert_ne!(full.cursor.as_deref(), Some(cursor.as_str()));
    assert!(full.assignments[0]
        .targets
        .iter()
        .any(|t| t.flow_log_id == fl2));
    assert_eq!(n.host_view.load(SeqCst), views + 1);
    let plain = f.control.sync_for(ACCT, &request("h1", both())).unwrap();
    assert_eq!(plain.assignments, full.assignments);
    assert_eq!(n.host_view.load(SeqCst), views + 2);
    // a stale or foreign cursor is simply a miss
    req.cursor = Some("v0.12345".into());
    assert!(!f.control.sync_for(ACCT, &req).unwrap().unchanged);
    assert_eq!(n.whole_table.load(SeqCst), 0);
}

#[test]
fn the_cache_is_bounded() {
    let f = fixture();
    let control = LocalControl::with_cache_sizes(f.store.clone(), ACCT, REGION, 2, 2);
    let host = |i: usize| {
        let mut r = request(&format!("h{i}"), vec![]);
        // each host its own ENI
        r.inventory = Some(
            INVENTORY
                .replace("veth-a", &format!("veth-{i}"))
                .replace("\"ns1\"", &format!("\"ns{i}\""))
                .replace(
                    "[[network_interface]]\nsubnet = \"lab-a\"\ninterface = \"veth-b\"\nnetns = \"ns1\"\nprivate_ip = \"10.10.1.11\"\n",
                    "",
                )
                .replace("10.10.1.10", &format!("10.10.1.{}", 100 + i)),
        );
        r
    };
    for i in 0..3 {
        control.sync_for(ACCT, &host(i)).unwrap();
    }
    assert_eq!(f.store.n.register.load(SeqCst), 3);
    // h2 and h1 are remembered, h0 was forgotten
    control.sync_for(ACCT, &host(2)).unwrap();
    control.sync_for(ACCT, &host(1)).unwrap();
    assert_eq!(f.store.n.register.load(SeqCst), 3);
    control.sync_for(ACCT, &host(0)).unwrap();
    assert_eq!(f.store.n.register.load(SeqCst), 4);
    let c = control.caches();
    assert!(c.written.len() <= 2 && c.answers.len() <= 2);
}

#[test]
fn older_peers_still_understand_each_other() {
    // an older agent's request (no cursor) reads
    let old: SyncRequest =
        serde_json::from_str(r#"{"host":"h","interfaces":[],"inventory":null,"statuses":[]}"#)
            .unwrap();
    assert_eq!(old.cursor, None);
    // an older control plane's answer (no cursor, no unchanged) reads as a full answer
    let resp: SyncResponse = serde_json::from_str(r#"{"assignments":[]}"#).unwrap();
    assert!(!resp.unchanged && resp.cursor.is_none());
    // a full answer does not say `unchanged` at all (older agents ignore unknown fields,
    // but would misread an empty `unchanged` answer, which they never get: they send no
    // cursor)
    let text = serde_json::to_string(&SyncResponse {
        assignments: vec![],
        cursor: Some("v1.3".into()),
        unchanged: false,
    })
    .unwrap();
    assert!(!text.contains("unchanged"), "{text}");
}
