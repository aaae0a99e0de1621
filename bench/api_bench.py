#!/usr/bin/env python3
"""API benchmark: `flowlog serve` against `moto_server`, same machine, same run.

Loads COUNT flow logs into each server (CreateFlowLogs with 1000 resource IDs per call against
1000 VPCs, one CloudWatch Logs group per call, so no call hits a duplicate), then measures
requests/s and p50/p99 latency with N concurrent client processes for:

  create       CreateFlowLogs, one new flow log per request
  by-id        DescribeFlowLogs FlowLogId.1=<random existing id>
  by-filter    DescribeFlowLogs Filter resource-id=<random VPC> (COUNT/1000 matches)
  paged        DescribeFlowLogs MaxResults=1000 + NextToken through everything (one "request"
               here is one full walk; moto has no paging and answers everything at once)

Clients are separate processes (no shared GIL), each with a keep-alive HTTP session, signing
every request with botocore's SigV4 signer. Loopback only.

moto checks every new flow log against all existing ones (O(n) per create), so loading it is
quadratic: it is loaded in 1000-flow-log steps until --moto-count or --moto-load-seconds is
reached, and the table says which count each server held.

  .venv/bin/python bench/api_bench.py                      # 100 000 flow logs, 4 clients
  .venv/bin/python bench/api_bench.py --count 20000 --seconds 5 --skip-moto
  .venv/bin/python bench/api_bench.py --count 20000 --skip-moto --tls   # flowlog over HTTP, then HTTPS

--tls runs flowlog a second time over HTTPS (a throwaway self-signed certificate made with
openssl, verified by the clients) and prints the HTTPS/HTTP ratio per operation.

--store picks flowlog's database: `sqlite` (default: a file in a temp dir), `pg` (a throwaway
PostgreSQL cluster made by tests/pgcluster.py, removed at the end), or a URL passed to
`flowlog serve --store` as is (`postgres://user:pw@host/db`, `sqlite:///path`; the database
must be empty). --replicas N starts N `flowlog serve` on that one database and every client
sends its requests to them in turn (request i to replica i mod N), as a round-robin load
balancer would. With `pg` the database's rows read per request are printed too
(pg_stat_database tup_returned + tup_fetched).

  .venv/bin/python bench/api_bench.py --count 100000 --skip-moto --store pg --replicas 2
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import requests

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = REPO / ".venv" / "bin"
KEY, SECRET = "AKIABENCHADMIN000001", "bench-secret-key-0000000000000000000000"
REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/bench"
IDS = re.compile(r"<flowLogId>([^<]+)</flowLogId>")
ITEM = re.compile(r"<item>(fl-[0-9a-f]+)</item>")
NEXT = re.compile(r"<nextToken>([^<]+)</nextToken>")
VPC = re.compile(r"<vpcId>([^<]+)</vpcId>")


# -- signing client ---------------------------------------------------------------------------


# CA bundle the clients verify an https:// server with (set by --tls).
CA_BUNDLE: str | None = None


class Client:
    """Signs and sends requests; `url` may list several replicas separated by spaces, which
    get the requests in turn (one keep-alive session each)."""

    def __init__(self, url: str):
        self.urls = [u + "/" for u in url.split()]
        self.sessions = [requests.Session() for _ in self.urls]
        for s in self.sessions:
            if CA_BUNDLE:
                s.verify = CA_BUNDLE
        self.turn = 0
        self.signer = botocore.auth.SigV4Auth(botocore.credentials.Credentials(KEY, SECRET), "ec2", REGION)

    def call(self, action: str, pairs: list[tuple[str, str]]) -> tuple[int, str]:
        self.turn = (self.turn + 1) % len(self.urls)
        self.url, self.session = self.urls[self.turn], self.sessions[self.turn]
        body = urllib.parse.urlencode([("Action", action), ("Version", "2016-11-15")] + pairs,
                                      quote_via=urllib.parse.quote)
        req = botocore.awsrequest.AWSRequest(
            method="POST", url=self.url, data=body,
            headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
        self.signer.add_auth(req)
        p = req.prepare()
        r = self.session.post(p.url, headers=dict(p.headers.items()), data=p.body, timeout=600,
                              verify=CA_BUNDLE or True)
        return r.status_code, r.text


def create_pairs(vpcs: list[str], group: str) -> list[tuple[str, str]]:
    pairs = [("ResourceType", "VPC"), ("TrafficType", "ALL"), ("LogGroupName", group),
             ("DeliverLogsPermissionArn", ROLE)]
    pairs += [(f"ResourceId.{i + 1}", v) for i, v in enumerate(vpcs)]
    return pairs


# -- servers ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    def __init__(self, cmd, name, ready_re=None, url=None, cwd=None):
        self.name = name
        self.log = open(Path(tempfile.gettempdir()) / f"api_bench_{name}_{os.getpid()}.log", "w+b")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE if ready_re else self.log,
                                     stderr=self.log, cwd=cwd)
        self.url = url
        deadline = time.time() + 60
        if ready_re:
            for raw in self.proc.stdout:
                m = re.search(ready_re, raw.decode("utf-8", "replace"))
                if m:
                    self.url = m.group(1)
                    break
                if time.time() > deadline:
                    break
            # keep draining stdout so the server never blocks on a full pipe
            threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"{name} exited early; see {self.log.name}")
            try:
                requests.get(self.url + "/", timeout=1, verify=CA_BUNDLE or True)
                break
            except requests.RequestException:
                if time.time() > deadline:
                    self.stop()
                    raise SystemExit(f"{name} did not come up")
                time.sleep(0.1)

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def rss_mib(self) -> float:
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
        return float("nan")


def make_cert(workdir: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (throwaway, for this run only)."""
    cert, key = workdir / "cert.pem", workdir / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def start_flowlog(binary: str, workdir: Path, tls: tuple[Path, Path] | None = None,
                  store: str | None = None, name: str = "flowlog") -> Proc:
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = workdir / "flowlog.toml"
    cfg.write_text(
        f'account_id = "123456789012"\nregion = "{REGION}"\n\n[[credentials]]\n'
        f'access_key_id = "{KEY}"\nsecret_access_key = "{SECRET}"\nallow = ["ec2:*"]\n\n'
        "[api]\nmax_flow_logs_per_resource = 100000\n")
    extra = ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])] if tls else []
    if store:
        extra += ["--store", store]
    return Proc([binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", str(workdir / "data"),
                 "--config", str(cfg), *extra], name, ready_re=r"listening on (https?://[0-9.]+:\d+)")


class Replicas:
    """N `flowlog serve` on one database; `.url` lists them all (Client alternates)."""

    def __init__(self, binary: str, workdir: Path, n: int, store_url: str | None,
                 tls: tuple[Path, Path] | None = None):
        if n > 1 and not store_url:
            # two servers on one SQLite file is not a supported deployment
            raise SystemExit("--replicas above 1 needs a shared database: --store pg or a postgres:// URL")
        self.procs = []
        try:
            for i in range(n):
                # the first one applies the migrations before the others start
                self.procs.append(start_flowlog(binary, workdir / f"r{i}", tls, store_url, f"flowlog{i}"))
        except BaseException:
            self.stop()
            raise
        self.url = " ".join(p.url for p in self.procs)

    def stop(self):
        for p in self.procs:
            p.stop()

    def rss_mib(self) -> float:
        return sum(p.rss_mib() for p in self.procs)


def start_moto() -> Proc:
    port = free_port()
    return Proc([str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], "moto",
                url=f"http://127.0.0.1:{port}")


# -- loading ----------------------------------------------------------------------------------


def _make_vpcs(args):
    url, n = args
    c = Client(url)
    out = []
    for _ in range(n):
        st, body = c.call("CreateVpc", [("CidrBlock", "10.0.0.0/16")])
        assert st == 200, body[:500]
        out.append(VPC.search(body).group(1))
    return out


def load(url: str, count: int, clients: int, budget_s: float | None, label: str):
    """Creates 1000 VPCs and count flow logs; returns (vpcs, flow log ids, groups, seconds)."""
    t0 = time.time()
    with mp.get_context("fork").Pool(clients) as pool:
        parts = pool.map(_make_vpcs, [(url, 1000 // clients + (1 if i < 1000 % clients else 0))
                                      for i in range(clients)])
    vpcs = [v for p in parts for v in p]
    c = Client(url)
    ids, groups = [], []
    step = 0
    while len(ids) < count:
        n = min(1000, count - len(ids))
        group = f"bench-load-{step}"
        st, body = c.call("CreateFlowLogs", create_pairs(vpcs[:n], group))
        assert st == 200, body[:500]
        got = ITEM.findall(body.split("<unsuccessful")[0])
        assert len(got) == n, f"{label}: asked {n}, got {len(got)}: {body[:300]}"
        ids += got
        groups.append(group)
        step += 1
        if step % 10 == 0:
            print(f"  {label}: {len(ids)} flow logs loaded in {time.time() - t0:.0f}s", flush=True)
        if budget_s is not None and time.time() - t0 > budget_s:
            print(f"  {label}: load budget of {budget_s:.0f}s used up at {len(ids)} flow logs", flush=True)
            break
    return vpcs, ids, groups, time.time() - t0


# -- measuring --------------------------------------------------------------------------------


def _worker(args):
    url, kind, seconds, seed, vpcs, ids, wid = args
    rnd = random.Random(seed)
    c = Client(url)
    lat, errors, n = [], 0, 0
    end = time.time() + seconds
    while time.time() < end:
        if kind == "create":
            pairs = create_pairs([vpcs[rnd.randrange(len(vpcs))]], f"bench-c{wid}-{n}")
            action = "CreateFlowLogs"
        elif kind == "by-id":
            action, pairs = "DescribeFlowLogs", [("FlowLogId.1", ids[rnd.randrange(len(ids))])]
        elif kind == "by-filter":
            action = "DescribeFlowLogs"
            pairs = [("Filter.1.Name", "resource-id"), ("Filter.1.Value.1", vpcs[rnd.randrange(len(vpcs))])]
        else:
            raise ValueError(kind)
        t = time.perf_counter()
        st, body = c.call(action, pairs)
        lat.append(time.perf_counter() - t)
        if st != 200:
            errors += 1
        n += 1
    return lat, errors


def _walk(args):
    url, paged = args
    c = Client(url)
    t = time.perf_counter()
    token, total, pages = None, 0, 0
    while True:
        pairs = [("MaxResults", "1000")] if paged else []
        if token:
            pairs.append(("NextToken", token))
        st, body = c.call("DescribeFlowLogs", pairs)
        assert st == 200, body[:300]
        total += body.count("<flowLogId>")
        pages += 1
        m = NEXT.search(body)
        if not m:
            break
        token = m.group(1)
    return time.perf_counter() - t, total, pages


def measure(url: str, kind: str, clients: int, seconds: float, vpcs, ids):
    with mp.get_context("fork").Pool(clients) as pool:
        t0 = time.time()
        res = pool.map(_worker, [(url, kind, seconds, 1000 + i, vpcs, ids, i) for i in range(clients)])
        wall = time.time() - t0
    lat = sorted(x for r in res for x in r[0])
    errors = sum(r[1] for r in res)
    return summarize(lat, wall, errors)


def measure_walk(url: str, paged: bool, clients: int, walks: int):
    with mp.get_context("fork").Pool(clients) as pool:
        t0 = time.time()
        res = pool.map(_walk, [(url, paged)] * walks)
        wall = time.time() - t0
    lat = sorted(r[0] for r in res)
    s = summarize(lat, wall, 0)
    s["items"] = res[0][1]
    s["pages"] = res[0][2]
    return s


def summarize(lat, wall, errors):
    if not lat:
        return {"n": 0, "rps": 0.0, "p50": float("nan"), "p99": float("nan"), "errors": errors}
    return {
        "n": len(lat),
        "rps": len(lat) / wall,
        "p50": statistics.median(lat) * 1000,
        "p99": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000,
        "errors": errors,
    }


def run_suite(name, url, count, args, budget, pg=None):
    print(f"{name}: loading {count} flow logs", flush=True)
    vpcs, ids, _, load_s = load(url, count, args.clients, budget, name)
    print(f"{name}: {len(ids)} flow logs in {load_s:.1f}s ({len(ids) / load_s:.0f} flow logs/s)", flush=True)
    out = {"count": len(ids), "load_s": load_s}
    for kind in ("by-id", "by-filter", "create"):
        before = pg.rows_read(PG_DB) if pg else None
        out[kind] = measure(url, kind, args.clients, args.seconds, vpcs, ids)
        r = out[kind]
        rows = ""
        if pg:
            time.sleep(1.2)  # the statistics are flushed about once a second
            r["rows_per_req"] = (pg.rows_read(PG_DB) - before) / max(1, r["n"])
            rows = f", {r['rows_per_req']:.0f} rows read per request"
        print(f"  {name} {kind}: {r['rps']:.0f} req/s p50 {r['p50']:.2f} ms p99 {r['p99']:.2f} ms "
              f"({r['n']} requests, {r['errors']} errors{rows})", flush=True)
    out["paged"] = measure_walk(url, name == "flowlog", min(args.clients, 2), args.walks)
    r = out["paged"]
    print(f"  {name} paged: {r['n']} walks of {r['items']} items in {r['pages']} pages, "
          f"p50 {r['p50']:.0f} ms per walk", flush=True)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_bin = REPO / "target" / "release" / "flowlog"
    if not default_bin.exists():
        default_bin = REPO / "target" / "debug" / "flowlog"
    ap.add_argument("--bin", default=os.environ.get("FLOWLOG_BIN", str(default_bin)))
    ap.add_argument("--count", type=int, default=100_000)
    ap.add_argument("--moto-count", type=int, default=None, help="default: --count")
    ap.add_argument("--moto-load-seconds", type=float, default=300)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=10, help="per measured operation")
    ap.add_argument("--walks", type=int, default=4, help="full listings for the paged measurement")
    ap.add_argument("--skip-moto", action="store_true")
    ap.add_argument("--tls", action="store_true", help="also run flowlog over HTTPS and print HTTPS/HTTP ratios")
    ap.add_argument("--store", default="sqlite",
                    help="sqlite (default), pg (throwaway PostgreSQL cluster), or a URL for --store")
    ap.add_argument("--replicas", type=int, default=1, help="flowlog serve processes on the one database")
    args = ap.parse_args()

    pg = None
    if args.store == "pg":
        sys.path.insert(0, str(REPO / "tests"))
        from pgcluster import PgCluster, unavailable_reason
        if unavailable_reason():
            raise SystemExit(unavailable_reason())
        pg = PgCluster(prefix="api_bench_pg_").start()

    stores: list = []

    def store_url():
        """A fresh database for one suite (with pg: apibench_<n>, named in PG_DB)."""
        if pg:
            global PG_DB
            PG_DB = f"{PG_DB_BASE}_{len(stores)}"
            return pg.createdb(PG_DB)
        return None if args.store == "sqlite" else args.store

    results = {}
    try:
        with tempfile.TemporaryDirectory(prefix="api_bench_") as tmp:
            stores.append(store_url())
            srv = Replicas(args.bin, Path(tmp), args.replicas, stores[-1])
            try:
                results["flowlog"] = run_suite("flowlog", srv.url, args.count, args, None, pg)
                results["flowlog"]["rss"] = srv.rss_mib()
            finally:
                srv.stop()
        if args.tls:
            run_tls(args, results, stores, store_url, pg)
    finally:
        if pg:
            pg.stop()
    report(args, results)


PG_DB_BASE = "apibench"
PG_DB = PG_DB_BASE


def run_tls(args, results, stores, store_url, pg):
    global CA_BUNDLE
    with tempfile.TemporaryDirectory(prefix="api_bench_tls_") as tmp:
        cert, key = make_cert(Path(tmp))
        CA_BUNDLE = str(cert)
        stores.append(store_url())
        srv = Replicas(args.bin, Path(tmp), args.replicas, stores[-1], (cert, key))
        try:
            results["flowlog-tls"] = run_suite("flowlog-tls", srv.url, args.count, args, None, pg)
            results["flowlog-tls"]["rss"] = srv.rss_mib()
        finally:
            srv.stop()
            CA_BUNDLE = None


def report(args, results):
    if not args.skip_moto:
        moto = start_moto()
        try:
            results["moto"] = run_suite("moto", moto.url, args.moto_count or args.count, args,
                                        args.moto_load_seconds)
            results["moto"]["rss"] = moto.rss_mib()
        finally:
            moto.stop()

    f, m = results["flowlog"], results.get("moto")
    print()
    print(f"binary: {args.bin}; store {args.store}, {args.replicas} replica(s); {args.clients} client "
          f"processes; {args.seconds:.0f}s per operation; {os.cpu_count()} CPUs shared by clients and server")
    print(f"flow logs held: flowlog {f['count']}" + (f", moto {m['count']}" if m else "")
          + f"; load: flowlog {f['load_s']:.1f}s" + (f", moto {m['load_s']:.1f}s" if m else "")
          + f"; RSS after: flowlog {f['rss']:.0f} MiB" + (f", moto {m['rss']:.0f} MiB" if m else ""))
    hdr = f"{'operation':<12} {'flowlog req/s':>13} {'p50 ms':>8} {'p99 ms':>8}"
    if m:
        hdr += f" | {'moto req/s':>10} {'p50 ms':>8} {'p99 ms':>9} | {'req/s ratio':>11} {'p99 ratio':>9}"
    print(hdr)
    print("-" * len(hdr))
    for kind in ("create", "by-id", "by-filter", "paged"):
        a = f[kind]
        line = f"{kind:<12} {a['rps']:>13.1f} {a['p50']:>8.2f} {a['p99']:>8.2f}"
        if m:
            b = m[kind]
            rr = a["rps"] / b["rps"] if b["rps"] else float("inf")
            pr = b["p99"] / a["p99"] if a["p99"] else float("inf")
            line += f" | {b['rps']:>10.1f} {b['p50']:>8.2f} {b['p99']:>9.2f} | {rr:>10.1f}x {pr:>8.1f}x"
        print(line)
    print("(paged: one request = one full listing; flowlog pages MaxResults=1000, moto answers in one page."
          " ratios: flowlog req/s / moto req/s, moto p99 / flowlog p99)")
    t = results.get("flowlog-tls")
    if t:
        print()
        print(f"{'operation':<12} {'HTTPS req/s':>12} {'p99 ms':>8} | {'HTTPS/HTTP req/s':>16} {'p99 HTTPS/HTTP':>14}")
        for kind in ("create", "by-id", "by-filter", "paged"):
            a, b = t[kind], f[kind]
            print(f"{kind:<12} {a['rps']:>12.1f} {a['p99']:>8.2f} | {a['rps'] / b['rps']:>15.2f}x "
                  f"{a['p99'] / b['p99']:>13.2f}x")
    errs = sum(f[k]["errors"] for k in ("create", "by-id", "by-filter"))
    if errs:
        print(f"WARNING: flowlog answered {errs} measured requests with a non-200 status")


if __name__ == "__main__":
    sys.exit(main())
