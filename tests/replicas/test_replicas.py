"""Two `flowlog serve` replicas on one PostgreSQL database behave as one service: the rules
that once leaned on SQLite's single writer hold across processes (ClientToken, duplicates, the
per-resource limit), a NextToken of one works on the other, and kill -9 of one replica in the
middle of a write burst loses no answered call while the other keeps serving."""

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from apiharness import expect_ok

ROUNDS = 8


def test_one_client_token_on_both_at_once(replicas):
    r1, r2 = replicas
    for n in range(ROUNDS):
        # new VPCs each round: the per-resource limit (2) is not what this test is about
        vpcs = [r1.vpc(f"10.{i}.0.0/16") for i in range(3)]
        barrier = threading.Barrier(4)
        token = f"tok-{n}"

        def go(srv):
            barrier.wait()
            return srv.create_fl(vpcs, dest=f"grp-{n}", ClientToken=token)

        with ThreadPoolExecutor(4) as pool:
            replies = list(pool.map(go, [r1, r2, r1, r2]))
        for r in replies:
            expect_ok(r, "CreateFlowLogs")
        ids = [sorted(r.ids()) for r in replies]
        assert all(i == ids[0] for i in ids), ids
        assert len(ids[0]) == 3 and all(r.unsuccessful() == [] for r in replies), replies
        # one set of flow logs, seen the same from both replicas
        for srv in (r1, r2):
            got = srv.all_flow_logs({"Filter.1.Name": "log-group-name", "Filter.1.Value.1": f"grp-{n}"})
            assert sorted(f["flowLogId"] for f in got) == ids[0]


def test_duplicates_and_limit_under_concurrent_creates(replicas):
    r1, r2 = replicas
    for n in range(ROUNDS):
        v = r1.vpc("10.9.0.0/16")
        # the same flow log (same resource, same destination) on both at once: one wins
        barrier = threading.Barrier(2)

        def dup(srv):
            barrier.wait()
            return srv.create_fl([v], dest=f"dup-{n}")

        with ThreadPoolExecutor(2) as pool:
            a, b = pool.map(dup, [r1, r2])
        for r in (a, b):
            expect_ok(r, "CreateFlowLogs")
        made = a.ids() + b.ids()
        assert len(made) == 1, (a, b)
        assert [u["code"] for u in a.unsuccessful() + b.unsuccessful()] == ["FlowLogAlreadyExists"]
        # six different flow logs on the same VPC across both: the limit (2) holds, the one
        # above already counts
        barrier6 = threading.Barrier(6)

        def other(i):
            barrier6.wait()
            return (r1, r2)[i % 2].create_fl([v], dest=f"lim-{n}-{i}")

        with ThreadPoolExecutor(6) as pool:
            replies = list(pool.map(other, range(6)))
        ok = [r for r in replies if r.ids()]
        assert len(ok) == 1, replies
        for r in replies:
            expect_ok(r, "CreateFlowLogs")
            assert [u["code"] for u in r.unsuccessful()] in ([], ["FlowLogsLimitExceeded"]), r
        assert len(r2.fl_ids_for(v)) == 2 and len(r1.fl_ids_for(v)) == 2


def test_next_token_from_one_works_on_the_other(replicas):
    r1, r2 = replicas
    vpcs = [r1.vpc(f"10.{i}.0.0/16") for i in range(12)]
    want = set(r2.fl_ok(vpcs, dest="paged"))
    seen, token, turn = [], None, 0
    while True:
        srv = (r1, r2)[turn % 2]
        turn += 1
        p = {"MaxResults": "5"}
        if token:
            p["NextToken"] = token
        r = expect_ok(srv.describe(p), "DescribeFlowLogs")
        seen += [f["flowLogId"] for f in r.flow_logs()]
        token = r.xml.findtext("nextToken")
        if not token:
            break
    assert turn >= 3
    assert sorted(seen) == sorted(want) and len(seen) == len(want)
    # and with the aws CLI, which pages by itself, through the other replica
    out = r2.aws_json("ec2", "describe-flow-logs", "--page-size", "5")
    assert sorted(f["FlowLogId"] for f in out["FlowLogs"]) == sorted(want)


def test_kill9_one_replica_mid_burst(replicas):
    r1, r2 = replicas
    answered: list[tuple[str, str]] = []  # (replica, vpc id) of every 200
    lock = threading.Lock()
    stop = threading.Event()
    failures = {"r1": 0, "r2": 0}

    def burst(srv, name):
        while not stop.is_set():
            try:
                r = srv.call("CreateVpc", {"CidrBlock": "10.20.0.0/16"}, timeout=10)
            except Exception:
                with lock:
                    failures[name] += 1
                if name == "r1" and not r1.alive():
                    return
                continue
            if r.status == 200:
                with lock:
                    answered.append((name, r.xml.findtext("vpc/vpcId")))
            else:
                with lock:
                    failures[name] += 1

    threads = [threading.Thread(target=burst, args=(s, n)) for s, n in
               [(r1, "r1"), (r1, "r1"), (r1, "r1"), (r2, "r2"), (r2, "r2")]]
    for t in threads:
        t.start()
    try:
        deadline = time.time() + 30
        while sum(1 for n, _ in answered if n == "r1") < 40 and time.time() < deadline:
            time.sleep(0.02)
        os.kill(r1.proc.pid, signal.SIGKILL)
        r1.proc.wait()
        killed_at = len(answered)
        time.sleep(1.5)
        after = len(answered)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert killed_at >= 40, f"only {killed_at} answers before the kill"
    assert after > killed_at, "r2 stopped serving when r1 was killed"
    assert failures["r2"] == 0, failures
    stored = {v["VpcId"] for v in r2.client().describe_vpcs()["Vpcs"]}
    missing = [(n, v) for n, v in answered if v not in stored]
    assert not missing, f"{len(missing)} answered CreateVpc calls lost: {missing[:5]}"
    # r1 comes back on the same database and sees everything too
    r1.proc = None
    r1.start()
    again = {v["VpcId"] for v in r1.client().describe_vpcs()["Vpcs"]}
    assert {v for _, v in answered} <= again
