//! The suite every `Store` backend must pass.

use flowlog_model::{DeliverStatus, Destination, ResourceType, Subnet, TrafficType, Vpc};

use crate::{
    FlowLogField, FlowLogQuery, NewFlowLogs, NewNetworkInterface, SqliteStore, Store, StoreError,
    TokenCheck,
};

const ACCT: &str = "123456789012";

fn store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&dir.path().join("state.db")).unwrap();
    (dir, s)
}

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

fn code(e: StoreError) -> String {
    match e {
        StoreError::Api { code, .. } => code,
        other => panic!("unexpected {other}"),
    }
}

#[test]
fn subnet_rules_and_dependencies() {
    let (_d, s) = store();
    s.create_vpc(&vpc("vpc-00000001")).unwrap();
    s.create_subnet(&subnet("subnet-00000001", "vpc-00000001", "10.0.1.0/24"))
        .unwrap();
    assert_eq!(
        code(
            s.create_subnet(&subnet("subnet-00000002", "vpc-00000001", "10.0.1.128/25"))
                .unwrap_err()
        ),
        "InvalidSubnet.Conflict"
    );
    assert_eq!(
        code(
            s.create_subnet(&subnet("subnet-00000003", "vpc-00000001", "10.1.0.0/24"))
                .unwrap_err()
        ),
        "InvalidSubnet.Range"
    );
    assert_eq!(
        code(
            s.create_subnet(&subnet("subnet-00000004", "vpc-0000dead", "10.0.2.0/24"))
                .unwrap_err()
        ),
        "InvalidVpcID.NotFound"
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

#[test]
fn create_flow_logs_per_resource_outcomes_and_tokens() {
    let (_d, s) = store();
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

#[test]
fn describe_filters_and_pages() {
    let (_d, s) = store();
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

#[test]
fn state_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    {
        let s = SqliteStore::open(&path).unwrap();
        s.create_vpc(&vpc("vpc-00000001")).unwrap();
        s.create_flow_logs(&s3_request(&["vpc-00000001"], "t"))
            .unwrap();
    }
    let s = SqliteStore::open(&path).unwrap();
    assert_eq!(
        s.vpcs(ACCT).unwrap()[0].tags,
        vec![("Name".to_string(), "vpc-00000001".to_string())]
    );
    assert_eq!(s.all_flow_logs().unwrap().len(), 1);
}

#[test]
fn register_upserts_and_keeps_user_tags() {
    let (_d, s) = store();
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
#[test]
fn register_and_status_stay_inside_the_account() {
    const OTHER: &str = "210987654321";
    let (_d, s) = store();
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

#[test]
fn issue12_columns_round_trip() {
    let (_d, s) = store();
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
