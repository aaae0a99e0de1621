//! The suite every `Store` backend must pass.

use flowlog_model::{DeliverStatus, Destination, ResourceType, Subnet, TrafficType, Vpc};

use crate::{
    FlowLogField, FlowLogQuery, NewFlowLogs, NewNetworkInterface, PgOptions, PgStore, SqliteStore,
    Store, StoreError, TokenCheck,
};

const ACCT: &str = "123456789012";

/// Where one test's database lives; `open` opens it (again): two opens are two processes
/// sharing the database as far as the store can tell.
trait Backend {
    fn open(&self) -> Box<dyn Store>;
}

struct Sqlite(tempfile::TempDir);

impl Backend for Sqlite {
    fn open(&self) -> Box<dyn Store> {
        Box::new(SqliteStore::open(&self.0.path().join("state.db")).unwrap())
    }
}

#[cfg(feature = "postgres")]
struct Postgres(String);

#[cfg(feature = "postgres")]
impl Backend for Postgres {
    fn open(&self) -> Box<dyn Store> {
        Box::new(PgStore::connect(&self.0, &PgOptions::default()).unwrap())
    }
}

/// Runs each named test (a `fn(&dyn Backend)`) once per backend, unchanged.
macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test]
            fn $name() {
                super::$name(&super::Sqlite(tempfile::tempdir().unwrap()));
            })*
        }
        #[cfg(feature = "postgres")]
        mod postgres {
            $(#[test]
            fn $name() {
                let Some(cluster) = crate::pg::testing::cluster() else { return };
                super::$name(&super::Postgres(cluster.fresh_database()));
            })*
        }
    };
}

suite!(
    subnet_rules_and_dependencies,
    create_flow_logs_per_resource_outcomes_and_tokens,
    describe_filters_and_pages,
    state_survives_reopen,
    register_upserts_and_keeps_user_tags,
    register_and_status_stay_inside_the_account,
    issue12_columns_round_trip,
    host_view_and_eni_hosts,
    change_version_moves_with_writes_only,
    replicas_agree_on_tokens_duplicates_limits_and_addresses,
    next_token_pages_on_another_replica,
);

fn vpc(id: &str) -> Vpc {
    Vpc {
        id: id.into(),
        account_id: ACCT.into(),
        cidr_block: "10.0.0.0/16".into(),
        instance_tenancy: "default".into(),
        is_default: false,
        cidr_association_id: "vpc-cidr-assoc-1".into(),
        dhcp_options_id: "dopt-1".into(),
        tags: vec![("Name".into(), id.into())],
    }
}

fn subnet(id: &str, vpc: &str, cidr: &str) -> Subnet {
    Subnet {
        id: id.into(),
        account_id: ACCT.into(),
        vpc_id: vpc.into(),
        cidr_block: cidr.into(),
        availability_zone: "us-east-1a".into(),
        availability_zone_id: None,
        available_ip_address_count: 0,
        default_for_az: false,
        tags: vec![],
    }
}

fn s3_request(ids: &[&str], token: &str) -> NewFlowLogs {
    NewFlowLogs {
        account_id: ACCT.into(),
        resource_type: ResourceType::Vpc,
        resource_ids: ids.iter().map(|s| s.to_string()).collect(),
        traffic_type: TrafficType::All,
        destination: Destination::S3 {
            arn: "arn:aws:s3:::b1".into(),
            bucket: "b1".into(),
            prefix: String::new(),
        },
        log_format: None,
        max_aggregation_interval: None,
        destination_options: None,
        tags: vec![],
        client_token: token.into(),
        fingerprint: format!("fp-{}", ids.join(",")),
        limit_per_resource: Some(2),
        destination_error: None,
        creation_time_ms: 1,
    }
}

/// The variant of a domain error (its wire form is flowlog-api's business).
fn code(e: StoreError) -> String {
    match e {
        StoreError::NotFound { kind, .. } => format!("NotFound({kind})"),
        StoreError::DependencyViolation { .. } => "DependencyViolation".into(),
        StoreError::SubnetRange { .. } => "SubnetRange".into(),
        StoreError::SubnetConflict { .. } => "SubnetConflict".into(),
        StoreError::AddressInUse { .. } => "AddressInUse".into(),
        StoreError::AddressOutOfRange { .. } => "AddressOutOfRange".into(),
        StoreError::SubnetFull { .. } => "SubnetFull".into(),
        StoreError::IdempotentParameterMismatch => "IdempotentParameterMismatch".into(),
        other => panic!("unexpected {other}"),
    }
}

fn subnet_rules_and_dependencies(b: &dyn Backend) {
    let s = b.open();
    let s = &*s;
    s.create_vpc(&vpc("vpc-00000001")).unwrap();
    s.create_subnet(&subnet("subnet-00000001", "vpc-00000001", "10.0.1.0/24"))
        .unwrap();
    assert_eq!(
        code(
            s.create_subnet(&subnet("subnet-00000002", "vpc-00000001", "10.0.1.128/25"))
                .unwrap_err()
        ),
        "SubnetConflict"
    );
    assert_eq!(
        code(
            s.create_subnet(&subnet("subnet-00000003", "vpc-00000001", "10.1.0.0/24"))
                .unwrap_err()
        ),
        "SubnetRange"
    );
    assert_eq!(
        code(
            s.create_subnet(&subnet("subnet-00000004", "vpc-0000dead", "10.0.2.0/24"))
                .unwrap_err()
        ),
        "NotFound(VPC)"
    );
    assert_eq!(
        code(s.delete_vpc(ACCT, "vpc-00000001").unwrap_err()),
        "DependencyViolation"
    );
    let eni = s
        .create_network_interface(&NewNetworkInterface {
            id: "eni-00000001".into(),
            account_id: ACCT.into(),
            subnet_id: "subnet-00000001".into(),
            description: String::new(),
            private_ip_address: None,
            mac_address: "02:00:00:00:00:01".into(),
            security_group_ids: vec![],
            tags: vec![],
        })
        .unwrap();
    assert_eq!(eni.private_ip_address, "10.0.1.4");
    assert_eq!(s.subnets(ACCT).unwrap()[0].available_ip_address_count, 250);
    assert_eq!(
        code(s.delete_subnet(ACCT, "subnet-00000001").unwrap_err()),
        "DependencyViolation"
    );
    s.delete_network_interface(ACCT, "eni-00000001").unwrap();
    s.delete_subnet(ACCT, "subnet-00000001").unwrap();
    s.delete_vpc(ACCT, "vpc-00000001").unwrap();
    assert!(s.vpcs(ACCT).unwrap().is_empty());
}

fn create_flow_logs_per_resource_outcomes_and_tokens(b: &dyn Backend) {
    let s = b.open();
    let s = &*s;
    s.create_vpc(&vpc("vpc-00000001")).unwrap();
    let out = s
        .create_flow_logs(&s3_request(&["vpc-00000001", "vpc-0000dead"], "t1"))
        .unwrap();
    assert_eq!(out.flow_log_ids.len(), 1);
    assert_eq!(out.unsuccessful[0].code, "InvalidVpcID.NotFound");
    // Replay: same answer, nothing new.
    assert_eq!(
        s.create_flow_logs(&s3_request(&["vpc-00000001", "vpc-0000dead"], "t1"))
            .unwrap(),
        out
    );
    let mut changed = s3_request(&["vpc-00000001"], "t1");
    changed.fingerprint = "other".into();
    assert_eq!(
        code(s.create_flow_logs(&changed).unwrap_err()),
        "IdempotentParameterMismatch"
    );
    assert_eq!(
        s.check_client_token(ACCT, "CreateFlowLogs", "t1", "other")
            .unwrap(),
        TokenCheck::Mismatch
    );
    // Duplicate, then the limit of two.
    let dup = s
        .create_flow_logs(&s3_request(&["vpc-00000001"], "t2"))
        .unwrap();
    assert_eq!(dup.unsuccessful[0].code, "FlowLogAlreadyExists");
    let mut other = s3_request(&["vpc-00000001"], "t3");
    other.destination = Destination::S3 {
        arn: "arn:aws:s3:::b1/sub/".into(),
        bucket: "b1".into(),
        prefix: "sub".into(),
    };
    assert_eq!(s.create_flow_logs(&other).unwrap().flow_log_ids.len(), 1);
    let mut third = s3_request(&["vpc-00000001"], "t4");
    third.destination = Destination::S3 {
        arn: "arn:aws:s3:::b2".into(),
        bucket: "b2".into(),
        prefix: String::new(),
    };
    assert_eq!(
        s.create_flow_logs(&third).unwrap().unsuccessful[0].code,
        "FlowLogsLimitExceeded"
    );
    // Deleting the VPC removes its flow logs.
    s.delete_vpc(ACCT, "vpc-00000001").unwrap();
    assert!(s.all_flow_logs().unwrap().is_empty());
}

fn describe_filters_and_pages(b: &dyn Backend) {
    let s = b.open();
    let s = &*s;
    for i in 0..12 {
        let id = format!("vpc-{i:08x}");
        s.create_vpc(&vpc(&id)).unwrap();
        let mut r = s3_request(&[&id], &format!("tok{i}"));
        if i % 2 == 1 {
            r.traffic_type = TrafficType::Reject;
        }
        s.create_flow_logs(&r).unwrap();
    }
    let mut q = FlowLogQuery {
        account_id: ACCT.into(),
        limit: Some(5),
        ..Default::default()
    };
    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    loop {
        let page = s.describe_flow_logs(&q).unwrap();
        sizes.push(page.flow_logs.len());
        seen.extend(page.flow_logs.into_iter().map(|f| f.id));
        match page.next_seq {
            Some(n) => q.after_seq = n,
            None => break,
        }
    }
    assert_eq!(sizes, vec![5, 5, 2]);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 12);
    let q = FlowLogQuery {
        account_id: ACCT.into(),
        conditions: vec![
            (FlowLogField::TrafficType, vec!["REJECT".into()]),
            (FlowLogField::ResourceId, vec!["vpc-0000000*".into()]),
        ],
        ..Default::default()
    };
    let got = s.describe_flow_logs(&q).unwrap().flow_logs;
    assert_eq!(
        got.len(),
        6,
        "odd ids among vpc-00000000..0b all match the pattern"
    );
    let id = got[0].id.clone();
    s.set_deliver_status(ACCT, &id, DeliverStatus::Failed, Some("Access error"))
        .unwrap();
    let q = FlowLogQuery {
        account_id: ACCT.into(),
        conditions: vec![(FlowLogField::DeliverLogsStatus, vec!["FAILED".into()])],
        ..Default::default()
    };
    let failed = s.describe_flow_logs(&q).unwrap().flow_logs;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].deliver_error.as_deref(), Some("Access error"));
    assert_eq!(
        s.delete_flow_logs(ACCT, &[id.clone(), "fl-00000000".into()])
            .unwrap(),
        vec!["fl-00000000".to_string()]
    );
}

fn state_survives_reopen(b: &dyn Backend) {
    {
        let s = b.open();
        s.create_vpc(&vpc("vpc-00000001")).unwrap();
        s.create_flow_logs(&s3_request(&["vpc-00000001"], "t"))
            .unwrap();
    }
    let s = b.open();
    assert_eq!(
        s.vpcs(ACCT).unwrap()[0].tags,
        vec![("Name".to_string(), "vpc-00000001".to_string())]
    );
    assert_eq!(s.all_flow_logs().unwrap().len(), 1);
}

fn register_upserts_and_keeps_user_tags(b: &dyn Backend) {
    let s = b.open();
    let s = &*s;
    let v = vpc("vpc-00000001");
    let mut sn = subnet("subnet-00000001", "vpc-00000001", "10.0.1.0/24");
    let eni = flowlog_model::NetworkInterface {
        id: "eni-00000001".into(),
        account_id: ACCT.into(),
        subnet_id: sn.id.clone(),
        vpc_id: v.id.clone(),
        availability_zone: "us-east-1a".into(),
        description: "host interface eth0".into(),
        private_ip_address: "10.0.1.7".into(),
        mac_address: "02:00:00:00:00:07".into(),
        security_group_ids: vec![],
        status: "in-use".into(),
        tags: vec![("flowlog:interface".into(), "eth0".into())],
        instance_id: None,
    };
    s.register(
        ACCT,
        std::slice::from_ref(&v),
        std::slice::from_ref(&sn),
        std::slice::from_ref(&eni),
    )
    .unwrap();
    s.create_tags(
        ACCT,
        std::slice::from_ref(&eni.id),
        &vec![("team".into(), "net".into())],
    )
    .unwrap();
    sn.tags = vec![];
    s.register(ACCT, &[v], &[sn], &[eni]).unwrap();
    let got = s.all_network_interfaces().unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].tags.len(), 2);
    s.set_network_interface_status(ACCT, "eni-00000001", "available")
        .unwrap();
    assert_eq!(s.network_interfaces(ACCT).unwrap()[0].status, "available");
}

/// Agent sync of one account cannot touch another account's resources (issue 9).
fn register_and_status_stay_inside_the_account(b: &dyn Backend) {
    const OTHER: &str = "210987654321";
    let s = b.open();
    let s = &*s;
    let v = vpc("vpc-00000001");
    let sn = subnet("subnet-00000001", "vpc-00000001", "10.0.1.0/24");
    let eni = flowlog_model::NetworkInterface {
        id: "eni-00000001".into(),
        account_id: ACCT.into(),
        subnet_id: sn.id.clone(),
        vpc_id: v.id.clone(),
        availability_zone: "us-east-1a".into(),
        description: "host interface eth0".into(),
        private_ip_address: "10.0.1.7".into(),
        mac_address: "02:00:00:00:00:07".into(),
        security_group_ids: vec![],
        status: "in-use".into(),
        tags: vec![("flowlog:host".into(), "a".into())],
        instance_id: None,
    };
    s.register(
        ACCT,
        std::slice::from_ref(&v),
        std::slice::from_ref(&sn),
        std::slice::from_ref(&eni),
    )
    .unwrap();
    s.create_flow_logs(&s3_request(&["vpc-00000001"], "t"))
        .unwrap();
    let fl = s.all_flow_logs().unwrap()[0].id.clone();

    // The same IDs, claimed by the other account with other values.
    let as_other = |mut v: Vpc, mut sn: Subnet, mut e: flowlog_model::NetworkInterface| {
        v.account_id = OTHER.into();
        v.cidr_block = "10.9.0.0/16".into();
        sn.account_id = OTHER.into();
        sn.cidr_block = "10.9.1.0/24".into();
        e.account_id = OTHER.into();
        e.private_ip_address = "10.9.1.9".into();
        e.status = "available".into();
        e.tags = vec![("flowlog:host".into(), "b".into())];
        (v, sn, e)
    };
    let (ov, osn, oe) = as_other(v.clone(), sn.clone(), eni.clone());
    for (vpcs, subnets, enis) in [
        (vec![ov.clone()], vec![], vec![]),
        (vec![], vec![osn.clone()], vec![]),
        (vec![], vec![], vec![oe.clone()]),
    ] {
        let err = s.register(OTHER, &vpcs, &subnets, &enis).unwrap_err();
        assert!(matches!(err, StoreError::ForeignResource { .. }), "{err:?}");
    }
    // A new subnet of the other account inside the first account's VPC is refused too.
    let mut intruder = subnet("subnet-00000009", "vpc-00000001", "10.0.9.0/24");
    intruder.account_id = OTHER.into();
    assert!(matches!(
        s.register(OTHER, &[], &[intruder], &[]),
        Err(StoreError::ForeignResource { .. })
    ));
    // Resources must carry the account they are registered for.
    assert!(matches!(
        s.register(ACCT, &[ov], &[], &[]),
        Err(StoreError::ForeignResource { .. })
    ));
    s.set_network_interface_status(OTHER, "eni-00000001", "available")
        .unwrap();
    s.set_deliver_status(OTHER, &fl, DeliverStatus::Failed, Some("Access error"))
        .unwrap();

    assert_eq!(s.vpcs(ACCT).unwrap()[0].cidr_block, "10.0.0.0/16");
    assert_eq!(s.subnets(ACCT).unwrap()[0].cidr_block, "10.0.1.0/24");
    assert_eq!(s.subnets(ACCT).unwrap().len(), 1);
    let got = &s.network_interfaces(ACCT).unwrap()[0];
    assert_eq!(got.private_ip_address, "10.0.1.7");
    assert_eq!(got.status, "in-use");
    assert_eq!(
        got.tags,
        vec![("flowlog:host".to_string(), "a".to_string())]
    );
    assert!(s.vpcs(OTHER).unwrap().is_empty());
    assert!(s.network_interfaces(OTHER).unwrap().is_empty());
    let f = &s.all_flow_logs().unwrap()[0];
    assert_eq!(f.deliver_status, DeliverStatus::Success);
}

fn issue12_columns_round_trip(b: &dyn Backend) {
    let s = b.open();
    let s = &*s;
    let v = vpc("vpc-00000001");
    let mut sn = subnet("subnet-00000001", "vpc-00000001", "10.0.1.0/24");
    sn.availability_zone_id = Some("use1-az4".into());
    let eni = flowlog_model::NetworkInterface {
        id: "eni-00000001".into(),
        account_id: ACCT.into(),
        subnet_id: sn.id.clone(),
        vpc_id: v.id.clone(),
        availability_zone: "us-east-1a".into(),
        description: String::new(),
        private_ip_address: "10.0.1.7".into(),
        mac_address: String::new(),
        security_group_ids: vec![],
        status: "in-use".into(),
        tags: vec![],
        instance_id: Some("i-0123456789abcdef0".into()),
    };
    s.register(ACCT, &[v], &[sn], &[eni]).unwrap();
    assert_eq!(
        s.subnets(ACCT).unwrap()[0].availability_zone_id.as_deref(),
        Some("use1-az4")
    );
    assert_eq!(
        s.all_network_interfaces().unwrap()[0]
            .instance_id
            .as_deref(),
        Some("i-0123456789abcdef0")
    );
    let mut req = s3_request(&["vpc-00000001"], "t-opts");
    let opts = flowlog_model::DestinationOptions {
        file_format: flowlog_model::FileFormat::Parquet,
        hive_compatible_partitions: true,
        per_hour_partition: true,
    };
    req.destination_options = Some(opts);
    s.create_flow_logs(&req).unwrap();
    assert_eq!(
        s.all_flow_logs().unwrap()[0].destination_options,
        Some(opts)
    );
}

#[test]
fn a_layout_1_database_opens_and_gains_the_new_columns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    {
        // The tables exactly as flowlog before issue 12 created them, with a flow log in it.
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(crate::schema::SCHEMA).unwrap();
        c.pragma_update(None, "user_version", 1).unwrap();
        c.execute(
            "INSERT INTO flow_logs(id, account, resource_id, resource_type, traffic_type, dest_type, \
             log_destination, s3_bucket, s3_prefix, dup_key, created_ms, deliver_status) \
             VALUES ('fl-00000001', ?1, 'vpc-00000001', 'VPC', 'ALL', 's3', 'arn:aws:s3:::b1', 'b1', '', 's3:b1/', 1, 'SUCCESS')",
            [ACCT],
        )
        .unwrap();
    }
    let s = SqliteStore::open(&path).unwrap();
    let got = s.all_flow_logs().unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].destination_options, None);
    s.register(
        ACCT,
        &[vpc("vpc-00000001")],
        &[subnet("subnet-00000001", "vpc-00000001", "10.0.1.0/24")],
        &[],
    )
    .unwrap();
    drop(s);
    // Opening again is a no-op for the columns.
    let s = SqliteStore::open(&path).unwrap();
    assert_eq!(s.subnets(ACCT).unwrap().len(), 1);
}

fn eni(id: &str, subnet: &str, ip: &str, host: Option<&str>) -> flowlog_model::NetworkInterface {
    flowlog_model::NetworkInterface {
        id: id.into(),
        account_id: ACCT.into(),
        subnet_id: subnet.into(),
        vpc_id: "vpc-00000001".into(),
        availability_zone: "us-east-1a".into(),
        description: String::new(),
        private_ip_address: ip.into(),
        mac_address: String::new(),
        security_group_ids: vec![],
        status: "in-use".into(),
        tags: host
            .map(|h| vec![(crate::HOST_TAG.to_string(), h.to_string())])
            .unwrap_or_default(),
        instance_id: None,
    }
}

fn host_view_and_eni_hosts(b: &dyn Backend) {
    let s = b.open();
    let s = &*s;
    s.register(
        ACCT,
        &[vpc("vpc-00000001"), vpc("vpc-00000002")],
        &[
            subnet("subnet-00000001", "vpc-00000001", "10.0.1.0/24"),
            subnet("subnet-00000002", "vpc-00000001", "10.0.2.0/24"),
        ],
        &[
            eni("eni-0000000a", "subnet-00000001", "10.0.1.10", Some("a")),
            eni("eni-0000000b", "subnet-00000002", "10.0.2.11", Some("b")),
            eni("eni-0000000c", "subnet-00000001", "10.0.1.12", None),
        ],
    )
    .unwrap();
    for (rt, id, tok) in [
        (ResourceType::NetworkInterface, "eni-0000000a", "t1"),
        (ResourceType::NetworkInterface, "eni-0000000b", "t2"),
        (ResourceType::Subnet, "subnet-00000002", "t3"),
        (ResourceType::Vpc, "vpc-00000001", "t4"),
        (ResourceType::Vpc, "vpc-00000002", "t5"),
    ] {
        let mut r = s3_request(&[id], tok);
        r.resource_type = rt;
        assert_eq!(s.create_flow_logs(&r).unwrap().flow_log_ids.len(), 1);
    }
    let view = s.host_view(ACCT, "a").unwrap();
    let mut ids: Vec<&str> = view.enis.iter().map(|e| e.id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["eni-0000000a", "eni-0000000c"]);
    assert_eq!(view.subnets.len(), 1);
    assert_eq!(view.subnets[0].id, "subnet-00000001");
    assert_eq!(view.vpcs.len(), 1);
    assert_eq!(
        view.vpcs[0].tags,
        vec![("Name".into(), "vpc-00000001".into())]
    );
    let mut fl: Vec<&str> = view
        .flow_logs
        .iter()
        .map(|f| f.resource_id.as_str())
        .collect();
    fl.sort();
    assert_eq!(fl, ["eni-0000000a", "vpc-00000001"]);
    // Moving an ENI to another host moves it between views.
    s.create_tags(
        ACCT,
        &["eni-0000000c".into()],
        &vec![(crate::HOST_TAG.into(), "b".into())],
    )
    .unwrap();
    let b_view = s.host_view(ACCT, "b").unwrap();
    let mut ids: Vec<&str> = b_view.enis.iter().map(|e| e.id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["eni-0000000b", "eni-0000000c"]);
    assert_eq!(s.host_view(ACCT, "a").unwrap().enis.len(), 1);
    s.delete_tags(
        ACCT,
        &["eni-0000000c".into()],
        &[(crate::HOST_TAG.into(), None)],
    )
    .unwrap();
    assert_eq!(s.host_view(ACCT, "a").unwrap().enis.len(), 2);
    assert!(s.host_view("999999999999", "a").unwrap().enis.is_empty());
    let hosts = s
        .eni_hosts(
            ACCT,
            &[
                "eni-0000000a".into(),
                "eni-0000000c".into(),
                "eni-00000bad".into(),
            ],
        )
        .unwrap();
    assert_eq!(hosts.len(), 2);
    assert_eq!(hosts["eni-0000000a"].as_deref(), Some("a"));
    assert_eq!(hosts["eni-0000000c"], None);
    assert!(s
        .eni_hosts("999999999999", &["eni-0000000a".into()])
        .unwrap()
        .is_empty());
}

fn change_version_moves_with_writes_only(b: &dyn Backend) {
    let s = b.open();
    let other = b.open();
    let s = &*s;
    let v0 = s
        .change_version()
        .unwrap()
        .expect("both backends keep a change version");
    s.create_vpc(&vpc("vpc-00000001")).unwrap();
    let v1 = s.change_version().unwrap().unwrap();
    assert!(v1 > v0);
    // Another process sees the same number.
    assert_eq!(other.change_version().unwrap(), Some(v1));
    let out = s
        .create_flow_logs(&s3_request(&["vpc-00000001"], "t"))
        .unwrap();
    let v2 = s.change_version().unwrap().unwrap();
    assert!(v2 > v1);
    // Reads, replays, refused writes and no-op status reports leave it alone.
    s.vpcs(ACCT).unwrap();
    s.host_view(ACCT, "h").unwrap();
    s.create_flow_logs(&s3_request(&["vpc-00000001"], "t"))
        .unwrap();
    assert!(s.delete_vpc(ACCT, "vpc-0000dead").is_err());
    let id = &out.flow_log_ids[0];
    s.set_deliver_status(ACCT, id, DeliverStatus::Success, None)
        .unwrap();
    assert_eq!(s.change_version().unwrap(), Some(v2));
    s.set_deliver_status(ACCT, id, DeliverStatus::Failed, Some("Access error"))
        .unwrap();
    let v3 = s.change_version().unwrap().unwrap();
    assert!(v3 > v2);
    s.delete_flow_logs(ACCT, std::slice::from_ref(id)).unwrap();
    assert!(s.change_version().unwrap().unwrap() > v3);
}

/// Two store instances on one database (two replicas), hammered from threads at once: one
/// ClientToken creates one set of flow logs, duplicates and the limit hold, addresses and
/// subnet ranges are never handed out twice.
fn replicas_agree_on_tokens_duplicates_limits_and_addresses(b: &dyn Backend) {
    let replicas: Vec<std::sync::Arc<dyn Store>> = vec![b.open().into(), b.open().into()];
    let s = &*replicas[0];
    s.create_vpc(&vpc("vpc-00000001")).unwrap();
    s.create_subnet(&subnet("subnet-00000001", "vpc-00000001", "10.0.1.0/28"))
        .unwrap();
    const N: usize = 8;
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(N));
    let handles: Vec<_> = (0..N)
        .map(|i| {
            let r = replicas[i % 2].clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                // Same token everywhere.
                let same = r
                    .create_flow_logs(&s3_request(&["vpc-00000001"], "shared"))
                    .unwrap();
                // A distinct token, but one configuration: duplicates.
                let mut dup = s3_request(&["vpc-00000001"], &format!("dup{i}"));
                dup.fingerprint = format!("fp-dup{i}");
                let d = r.create_flow_logs(&dup).unwrap();
                // Distinct destinations: only the per-resource limit (2) stops them.
                let mut lim = s3_request(&["vpc-00000001"], &format!("lim{i}"));
                lim.destination = Destination::S3 {
                    arn: format!("arn:aws:s3:::lim{i}"),
                    bucket: format!("lim{i}"),
                    prefix: String::new(),
                };
                let l = r.create_flow_logs(&lim).unwrap();
                let e = r.create_network_interface(&NewNetworkInterface {
                    id: format!("eni-{i:08x}"),
                    account_id: ACCT.into(),
                    subnet_id: "subnet-00000001".into(),
                    description: String::new(),
                    private_ip_address: None,
                    mac_address: String::new(),
                    security_group_ids: vec![],
                    tags: vec![],
                });
                let sn = r.create_subnet(&subnet(
                    &format!("subnet-1000000{i}"),
                    "vpc-00000001",
                    "10.0.2.0/24",
                ));
                (same, d, l, e, sn)
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let first = &results[0].0;
    assert_eq!(first.flow_log_ids.len(), 1);
    assert!(
        results.iter().all(|r| &r.0 == first),
        "one token, one answer"
    );
    // The shared token made one flow log; the limit of 2 allows exactly one more.
    let created: usize = results
        .iter()
        .map(|r| r.1.flow_log_ids.len() + r.2.flow_log_ids.len())
        .sum();
    assert_eq!(created, 1);
    assert!(
        results.iter().all(|r| r.1.flow_log_ids.is_empty()),
        "duplicates refused"
    );
    assert_eq!(s.all_flow_logs().unwrap().len(), 2);
    // A /28 has 16 - 5 = 11 usable addresses: all 8 ENIs fit, each with its own address.
    let mut ips: Vec<String> = results
        .iter()
        .map(|r| r.3.as_ref().unwrap().private_ip_address.clone())
        .collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), N);
    assert_eq!(
        results.iter().filter(|r| r.4.is_ok()).count(),
        1,
        "one subnet per range"
    );
    assert!(results
        .iter()
        .filter_map(|r| r.4.as_ref().err())
        .all(|e| matches!(e, StoreError::SubnetConflict { .. })));
}

/// A NextToken (a position) from one replica pages on another.
fn next_token_pages_on_another_replica(b: &dyn Backend) {
    let one = b.open();
    let two = b.open();
    for i in 0..7 {
        let id = format!("vpc-{i:08x}");
        one.create_vpc(&vpc(&id)).unwrap();
        one.create_flow_logs(&s3_request(&[&id], &format!("t{i}")))
            .unwrap();
    }
    let mut q = FlowLogQuery {
        account_id: ACCT.into(),
        limit: Some(3),
        ..Default::default()
    };
    let mut seen = Vec::new();
    for turn in 0.. {
        let r = if turn % 2 == 0 { &one } else { &two };
        let page = r.describe_flow_logs(&q).unwrap();
        seen.extend(page.flow_logs.into_iter().map(|f| f.resource_id));
        match page.next_seq {
            Some(n) => q.after_seq = n,
            None => break,
        }
    }
    let want: Vec<String> = (0..7).map(|i| format!("vpc-{i:08x}")).collect();
    assert_eq!(seen, want);
}

#[test]
#[cfg(feature = "postgres")]
fn postgres_connection_failure_is_unavailable() {
    // Nothing listens on port 1 of loopback.
    let err = PgStore::connect("postgres://u@127.0.0.1:1/db", &PgOptions::default())
        .err()
        .expect("no database there");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    let err = PgStore::connect(
        "postgres://u@127.0.0.1/db?sslmode=bogus",
        &PgOptions::default(),
    )
    .err()
    .unwrap();
    assert!(matches!(err, StoreError::Config(_)), "{err:?}");
}

#[test]
#[cfg(feature = "postgres")]
fn postgres_recovers_after_the_database_restarts() {
    let Some(cluster) = crate::pg::testing::cluster() else {
        return;
    };
    let url = cluster.fresh_database();
    let s = PgStore::connect(&url, &PgOptions::default()).unwrap();
    s.create_vpc(&vpc("vpc-00000001")).unwrap();
    // Kill every connection of this database (what a restart does to them).
    let db = url.rsplit('/').next().unwrap();
    cluster.psql(
        &url.replace(db, "postgres"),
        &format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'"),
    );
    // The pooled connection is gone: the first call may fail as Unavailable, never as
    // anything else, and the pool reconnects by itself.
    let mut ok = false;
    for _ in 0..3 {
        match s.vpcs(ACCT) {
            Ok(v) => {
                assert_eq!(v.len(), 1);
                ok = true;
                break;
            }
            Err(StoreError::Unavailable(_)) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert!(ok, "the pool reconnected");
}

#[test]
#[cfg(feature = "postgres")]
fn postgres_migrations_from_empty_and_refusal_of_newer() {
    let Some(cluster) = crate::pg::testing::cluster() else {
        return;
    };
    let url = cluster.fresh_database();
    let s = PgStore::open_unmigrated(&url, &PgOptions::default()).unwrap();
    assert_eq!(s.schema_version().unwrap(), 0);
    let applied = s.migrate().unwrap();
    assert_eq!(applied.len() as i64, crate::pg::latest_version());
    assert!(
        s.migrate().unwrap().is_empty(),
        "a second run applies nothing"
    );
    drop(s);
    cluster.psql(
        &url,
        "INSERT INTO schema_migrations(version, description) VALUES (999, 'future')",
    );
    let err = PgStore::connect(&url, &PgOptions::default()).err().unwrap();
    assert!(
        matches!(err, StoreError::SchemaTooNew { found: 999, .. }),
        "{err:?}"
    );
}

/// A database as the flowlog before versioned migrations left it ("version 2": layout 1 +
/// the issue-12 columns, `user_version` 2) opens, gets migration 3 only, and its ENIs' host
/// tags are found by host_view.
#[test]
fn a_version_2_database_migrates_to_the_latest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    {
        // What `SqliteStore::open` did before schema_migrations existed.
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(crate::schema::SCHEMA).unwrap();
        crate::schema::add_columns(&c).unwrap();
        c.pragma_update(None, "user_version", 2).unwrap();
        c.execute_batch(
            "INSERT INTO enis(id, account, subnet_id, vpc_id, az, description, private_ip, mac, groups, status) \
             VALUES ('eni-00000001', '123456789012', 'subnet-00000001', 'vpc-00000001', 'us-east-1a', '', '10.0.1.7', '', '[]', 'in-use'); \
             INSERT INTO tags(resource_id, key, value) VALUES ('eni-00000001', 'flowlog:host', 'h1');",
        )
        .unwrap();
    }
    let (s, applied) = SqliteStore::open_reporting(&path).unwrap();
    assert_eq!(
        applied.iter().map(|a| a.0).collect::<Vec<_>>(),
        vec![3],
        "only what version 2 lacked"
    );
    assert_eq!(s.host_view(ACCT, "h1").unwrap().enis.len(), 1);
    assert!(s.host_view(ACCT, "h2").unwrap().enis.is_empty());
    assert!(s.change_version().unwrap().is_some());
    drop(s);
    let (_, again) = SqliteStore::open_reporting(&path).unwrap();
    assert!(again.is_empty());
    let c = rusqlite::Connection::open(&path).unwrap();
    let versions: Vec<i64> = c
        .prepare("SELECT version FROM schema_migrations ORDER BY version")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(versions, vec![1, 2, 3]);
}

#[test]
fn sqlite_migrations_from_empty_and_refusal_of_newer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let (_, applied) = SqliteStore::open_reporting(&path).unwrap();
    assert_eq!(applied.len() as i64, crate::schema::latest());
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute(
        "INSERT INTO schema_migrations(version, description, applied_ms) VALUES (999, 'future', 0)",
        [],
    )
    .unwrap();
    drop(c);
    let err = SqliteStore::open(&path).err().unwrap();
    assert!(
        matches!(err, StoreError::SchemaTooNew { found: 999, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("upgrade flowlog"), "{err}");
}
