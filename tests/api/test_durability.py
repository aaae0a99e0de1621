"""Durable state and concurrency (issue 3 §6): a restart in the middle, a kill -9 in the middle
while creates are in flight, a create racing a delete, two creates with one ClientToken at once;
and the first start without a config (issue 3 §5)."""

import os
import stat
import threading
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest

from apiharness import REGION, Server, expect_ok


def snapshot(srv):
    """Everything the API can show, for before/after comparison."""
    ec2 = srv.client()
    fls = sorted(ec2.describe_flow_logs()["FlowLogs"], key=lambda f: f["FlowLogId"])
    return {
        "vpcs": sorted(ec2.describe_vpcs()["Vpcs"], key=lambda v: v["VpcId"]),
        "subnets": sorted(ec2.describe_subnets()["Subnets"], key=lambda v: v["SubnetId"]),
        "enis": sorted(ec2.describe_network_interfaces()["NetworkInterfaces"], key=lambda v: v["NetworkInterfaceId"]),
        "fls": fls,
    }


def test_restart_in_the_middle(make_server):
    """Stop (SIGTERM) and start again on the same data dir: every resource, flow log, tag and
    ClientToken record is still there; new IDs do not collide with old ones."""
    srv = make_server()
    v = srv.vpc("10.0.0.0/16")
    s = srv.subnet(v, "10.0.1.0/24")
    e = srv.eni(s)
    first = expect_ok(srv.create_fl([v], ClientToken="restart-tok", dest="arn:aws:s3:::b1/r/"), "CreateFlowLogs")
    srv.fl_ok([e], resource_type="NetworkInterface", dest="g")
    srv.client().create_tags(Resources=[v, first.ids()[0]], Tags=[{"Key": "k", "Value": "v"}])
    before = snapshot(srv)
    assert srv.stop() is not None
    srv.start()
    after = snapshot(srv)
    assert after == before
    # the token survives: a replay answers the original IDs; a changed request is a mismatch
    again = expect_ok(srv.create_fl([v], ClientToken="restart-tok", dest="arn:aws:s3:::b1/r/"), "CreateFlowLogs")
    assert again.ids() == first.ids()
    r = srv.create_fl([v], ClientToken="restart-tok", dest="arn:aws:s3:::b1/other/")
    assert r.status == 400 and r.code == "IdempotentParameterMismatch", r
    # the subnet still knows its CIDR (overlap) and the ENI its IP (new ENI gets another)
    assert srv.call("CreateSubnet", {"VpcId": v, "CidrBlock": "10.0.1.0/25"}).code == "InvalidSubnet.Conflict"
    e2 = srv.eni(s)
    ips = {n["NetworkInterfaceId"]: n["PrivateIpAddress"] for n in srv.client().describe_network_interfaces()[
        "NetworkInterfaces"]}
    assert ips[e2] != ips[e]
    # the per-resource limit counts the flow logs made before the restart
    srv.fl_ok([v], dest="arn:aws:s3:::b1/second/")
    r = expect_ok(srv.create_fl([v], dest="arn:aws:s3:::b1/third/"), "CreateFlowLogs")
    assert [u["code"] for u in r.unsuccessful()] == ["FlowLogsLimitExceeded"], r


def test_kill9_in_the_middle(make_server):
    """SIGKILL while threads send CreateVpc + CreateFlowLogs; restart on the same data dir:
    every create that got a 200 is there, and the store opens."""
    srv = make_server()
    acked_vpcs, acked_fls, errors, tokens = [], [], [], {}
    stop = threading.Event()

    def worker(n):
        while not stop.is_set():
            try:
                r = srv.call("CreateVpc", {"CidrBlock": "10.0.0.0/16"}, timeout=5)
                if r.status != 200:
                    if r.status >= 500:
                        errors.append(r)
                    continue
                vid = r.xml.findtext("vpc/vpcId")
                acked_vpcs.append(vid)
                tok = f"kill9-{vid}"
                f = srv.create_fl([vid], dest=f"arn:aws:s3:::b1/k{n}/", ClientToken=tok, timeout=5)
                if f.status == 200:
                    acked_fls.extend(f.ids())
                    tokens[tok] = (vid, n, f.ids())
                elif f.status >= 500:
                    errors.append(f)
            except Exception:  # connection refused/reset once the server is gone
                if stop.is_set():
                    return
                time.sleep(0.01)

    for round_no in range(3):  # three kill -9 / restart cycles on one data dir
        stop.clear()
        target = len(acked_fls) + 40
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        deadline = time.time() + 20
        while len(acked_fls) < target and time.time() < deadline:
            time.sleep(0.05)
        srv.kill()  # kill -9 with requests in flight
        stop.set()
        for t in threads:
            t.join(10)
        assert not errors, errors[:3]
        assert len(acked_fls) >= 10, "too few creates acknowledged before the kill to test anything"
        srv.start()
        ec2 = srv.client()
        have_vpcs = {v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"]}
        have_fls = {f["FlowLogId"]: f for f in ec2.describe_flow_logs()["FlowLogs"]}
        lost_v = [v for v in acked_vpcs if v not in have_vpcs]
        lost_f = [f for f in acked_fls if f not in have_fls]
        assert not lost_v and not lost_f, f"lost after kill -9: {len(lost_v)} VPCs, {len(lost_f)} flow logs"
        for f in acked_fls:
            assert have_fls[f]["ResourceId"] in have_vpcs
        # the ClientToken records are as durable as the flow logs they answer for
        for tok, (vid, n, ids) in list(tokens.items())[-20:]:
            again = expect_ok(srv.create_fl([vid], dest=f"arn:aws:s3:::b1/k{n}/", ClientToken=tok), "CreateFlowLogs")
            assert again.ids() == ids, (tok, again)
        assert {f["FlowLogId"] for f in srv.client().describe_flow_logs()["FlowLogs"]} == set(have_fls)
    # the store still takes writes
    v = srv.vpc()
    assert srv.fl_ok([v])


def test_create_racing_delete(fresh_server):
    """Creates on many VPCs race deletes of whatever Describe shows. Every flow log that a delete
    reported as deleted (not in Unsuccessful) is gone, no flow log is reported deleted twice, every
    other created flow log is still there, and no request fails with 5xx."""
    srv = fresh_server
    vpcs = [srv.vpc() for _ in range(40)]
    created, deleted, errors = [], [], []
    lock = threading.Lock()
    done = threading.Event()

    def creator(chunk):
        for v in chunk:
            r = srv.create_fl([v], dest="arn:aws:s3:::b1/race/")
            if r.status != 200:
                errors.append(r)
                continue
            with lock:
                created.extend(r.ids())

    def deleter():
        while not done.is_set():
            r = srv.describe()
            if r.status != 200:
                errors.append(r)
                continue
            ids = [f["flowLogId"] for f in r.flow_logs()][:10]
            if not ids:
                continue
            d = srv.call("DeleteFlowLogs", {"FlowLogId": ids})
            if d.status != 200:
                errors.append(d)
                continue
            failed = {u["resourceId"] for u in d.unsuccessful()}
            for u in d.unsuccessful():
                if u["code"] != "InvalidFlowLogId.NotFound":
                    errors.append(d)
            with lock:
                deleted.extend(i for i in ids if i not in failed)

    with ThreadPoolExecutor(8) as pool:
        dels = [pool.submit(deleter) for _ in range(3)]
        crs = [pool.submit(creator, vpcs[i::5]) for i in range(5)]
        for c in crs:
            c.result()
        time.sleep(0.2)
        done.set()
        for d in dels:
            d.result()
    assert not errors, errors[:3]
    assert len(created) == 40
    assert len(deleted) == len(set(deleted)), "a flow log was reported deleted by two concurrent deletes"
    remaining = {f["flowLogId"] for f in srv.all_flow_logs()}
    assert remaining == set(created) - set(deleted)


def test_same_client_token_at_once(fresh_server):
    """Eight identical creates with one ClientToken at the same time -> one flow log, every reply
    carries the same flowLogIdSet."""
    srv = fresh_server
    v = srv.vpc()
    barrier = threading.Barrier(8)

    def go(_):
        barrier.wait()
        return srv.create_fl([v], ClientToken="same-at-once", dest="arn:aws:s3:::b1/tok/")

    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(go, range(8)))
    for r in replies:
        assert r.status == 200, r
    idsets = {tuple(r.ids()) for r in replies}
    assert len(idsets) == 1 and len(next(iter(idsets))) == 1, [r.text for r in replies]
    assert srv.fl_ids_for(v) == list(next(iter(idsets)))


def test_parallel_creates_respect_limit(fresh_server):
    """Parallel creates on one VPC (different destinations): never more than 2 flow logs on it."""
    srv = fresh_server
    v = srv.vpc()
    barrier = threading.Barrier(6)

    def go(i):
        barrier.wait()
        return srv.create_fl([v], dest=f"arn:aws:s3:::b1/lim{i}/")

    with ThreadPoolExecutor(6) as pool:
        replies = list(pool.map(go, range(6)))
    assert all(r.status == 200 for r in replies), replies
    made = sum(len(r.ids()) for r in replies)
    assert made == 2 and len(srv.fl_ids_for(v)) == 2, [r.text for r in replies]


def test_first_start_without_config(tmp_path):
    """No --config: the server creates an admin credential in DATA_DIR/credentials.toml (mode 0600),
    prints how to export it, and that credential works; a second start reuses it."""
    srv = Server(tmp_path, use_config=False, name="noconf")
    srv.start()
    try:
        path = srv.data_dir / "credentials.toml"
        assert path.exists(), os.listdir(srv.data_dir)
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o077 == 0, f"credentials.toml is mode {oct(mode)}; must be readable only by its owner"
        for _ in range(100):  # the export lines may follow the "listening on" line
            out = "\n".join(srv.stdout_lines)
            if "AWS_ACCESS_KEY_ID" in out:
                break
            time.sleep(0.05)
        assert "AWS_ACCESS_KEY_ID" in out, out
        data = tomllib.loads(path.read_text())

        def find(d, key):
            if isinstance(d, dict):
                if key in d:
                    return d[key]
                for v in d.values():
                    x = find(v, key)
                    if x:
                        return x
            if isinstance(d, list):
                for v in d:
                    x = find(v, key)
                    if x:
                        return x
            return None

        key, secret = find(data, "access_key_id"), find(data, "secret_access_key")
        assert key and secret, data.keys()
        ec2 = boto3.client("ec2", endpoint_url=srv.url, region_name=REGION, verify=srv.verify, aws_access_key_id=key,
                           aws_secret_access_key=secret)
        vid = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        text = path.read_text()
        srv.stop()
        srv.start()
        assert path.read_text() == text, "a second start must reuse the stored credential"
        ec2 = boto3.client("ec2", endpoint_url=srv.url, region_name=REGION, verify=srv.verify, aws_access_key_id=key,
                           aws_secret_access_key=secret)
        assert [v["VpcId"] for v in ec2.describe_vpcs(VpcIds=[vid])["Vpcs"]] == [vid]
        host = srv.hostport[0]
        assert host in ("127.0.0.1", "localhost", "::1"), host
    finally:
        srv.stop()


def test_bad_config_is_refused(tmp_path):
    """Config with an unknown field: the server refuses to start (deny_unknown_fields), non-zero exit."""
    srv = Server(tmp_path, name="badconf")
    srv.config.write_text(srv.config.read_text() + "\nbogus_field = 1\n")
    with pytest.raises(RuntimeError, match="exited"):
        srv.start(timeout=20)
    srv.stop()
