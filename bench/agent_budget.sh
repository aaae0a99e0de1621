#!/usr/bin/env bash
# The agent's one flow budget per host under a flow flood: N interfaces (veth ends in one
# namespace) monitored by `flowlog serve`, `[agent] max_flows` = BUDGET shared by all of them,
# a flood of FLOWS distinct UDP 5-tuples into interface 0 while every other interface sees a
# little traffic. Prints the peak RSS of the process, the budget's MiB estimate, and what the
# delivered records hold per interface (OK records, SKIPDATA records).
# Traffic stays inside the two namespaces made here; everything is removed on exit.
# Usage: sudo bench/agent_budget.sh [N=20] [BUDGET=200000] [FLOWS=1000000] [PREFIX=p14]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-20}
BUDGET=${2:-200000}
FLOWS=${3:-1000000}
P=${4:-p14}
[ "$(id -u)" = 0 ] || { echo "needs root (namespaces, AF_PACKET)"; exit 2; }
BIN=${FLOWLOG_BIN:-target/release/flowlog}
[ -x "$BIN" ] || cargo build -q --release -p flowlog-cli
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=/work/main/.venv/bin/python
AWSBIN=$(dirname "$PY")/aws
T=$(mktemp -d)
A=${P}bA$$ B=${P}bB$$
PID=
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2> /dev/null && wait "$PID" 2> /dev/null || true
  ip netns del "$A" 2> /dev/null || true
  ip netns del "$B" 2> /dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT
ip netns add "$A"
ip netns add "$B"
{
  echo '[[vpc]]'
  echo 'name = "budget"'
  echo 'cidr_block = "10.214.0.0/16"'
} > "$T/inv.toml"
for i in $(seq 0 $((N - 1))); do
  ia=${P}a$i ib=${P}b$i
  ip link add "$ia" type veth peer name "$ib"
  ip link set "$ia" netns "$A"
  ip link set "$ib" netns "$B"
  ip -n "$A" addr add 10.214.$i.1/24 dev "$ia"
  ip -n "$B" addr add 10.214.$i.2/24 dev "$ib"
  ip -n "$A" link set "$ia" up
  ip -n "$B" link set "$ib" up
  mac=$(ip -n "$A" -j link show "$ia" | "$PY" -c 'import json,sys;print(json.load(sys.stdin)[0]["address"])')
  ip -n "$B" neigh add 10.214.$i.1 lladdr "$mac" dev "$ib"
  cat >> "$T/inv.toml" << INV
[[subnet]]
name = "s$i"
vpc = "budget"
cidr_block = "10.214.$i.0/24"
[[network_interface]]
subnet = "s$i"
interface = "$ia"
netns = "$A"
private_ip = "10.214.$i.1"
INV
done
# nothing listens: drop the ICMP port-unreachable replies so only the flood is counted
ip netns exec "$A" sysctl -qw net.ipv4.icmp_ratelimit=1000000000
cat > "$T/cfg.toml" << CFG
[[credentials]]
access_key_id = "AKIABENCHADMIN000001"
secret_access_key = "bench-secret-000000000000000000"
allow = ["ec2:*", "flowlog:*"]
[delivery]
window_secs = 5
close_grace_secs = 1
[agent]
window_secs = 10
sync_secs = 0.5
ring_mb = 8
max_flows = $BUDGET
inventory = "$T/inv.toml"
CFG
$BIN serve --listen 127.0.0.1:0 --data-dir "$T/data" --config "$T/cfg.toml" > "$T/out" 2> "$T/err" &
PID=$!
for _ in $(seq 100); do grep -q listening "$T/out" && break; sleep 0.1; done
EP=$(grep -o 'http://[0-9.:]*' "$T/out" || true)
[ -n "$EP" ] || { echo "flowlog serve did not start:"; cat "$T/err"; exit 1; }
export AWS_ACCESS_KEY_ID=AKIABENCHADMIN000001 AWS_SECRET_ACCESS_KEY=bench-secret-000000000000000000 AWS_DEFAULT_REGION=us-east-1 AWS_CONFIG_FILE=/dev/null
AWS="$AWSBIN --endpoint-url $EP --output text"
VPC=None
for _ in $(seq 50); do
  VPC=$($AWS ec2 describe-vpcs --filters Name=cidr,Values=10.214.0.0/16 --query 'Vpcs[0].VpcId')
  [ "$VPC" != None ] && break
  sleep 0.2
done
$AWS ec2 create-flow-logs --resource-type VPC --resource-ids "$VPC" --traffic-type ALL \
  --log-destination-type s3 --log-destination arn:aws:s3:::budget/ --query 'FlowLogIds[0]' > /dev/null
for _ in $(seq 200); do [ "$(grep -c "capture started" "$T/err")" -ge "$N" ] && break; sleep 0.1; done
echo "capturing: $(grep -c "capture started" "$T/err") interfaces"
HWM0=$(awk '/VmRSS/{print $2}' /proc/$PID/status)
# a little traffic on every interface, then the flood on interface 0
for i in $(seq 0 $((N - 1))); do
  ip netns exec "$B" "$PY" -c "
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for p in range(5):
    s.sendto(b'x' * 20, ('10.214.$i.1', 7000 + p))
"
done
T0=$(date +%s.%N)
ip netns exec "$B" "$PY" - "$FLOWS" << 'PY'
import socket, sys
n = int(sys.argv[1])
socks = []
sent = 0
# distinct 5-tuples: 60000 destination ports per source port
while sent < n:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("10.214.0.2", 0))
    socks.append(s)
    for port in range(1, 60001):
        s.sendto(b"f" * 18, ("10.214.0.1", port))
        sent += 1
        if sent >= n:
            break
print(f"flood: {sent} datagrams, {sent} distinct flows from {len(socks)} source ports")
PY
T1=$(date +%s.%N)
sleep 14 # the flood's window closes and is delivered
HWM=$(awk '/VmHWM/{print $2}' /proc/$PID/status)
kill -TERM $PID
wait $PID || true
PID=
"$PY" - "$T/data/s3" "$HWM0" "$HWM" "$T0" "$T1" "$BUDGET" << 'PY'
import collections, gzip, pathlib, sys
root, rss0, hwm, t0, t1, budget = sys.argv[1:]
ok = collections.Counter(); skip = collections.Counter(); pk = collections.Counter()
for f in pathlib.Path(root).rglob("*.log.gz"):
    for line in gzip.decompress(f.read_bytes()).decode().splitlines()[1:]:
        r = line.split()
        if r[13] == "OK":
            ok[r[2]] += 1; pk[r[2]] += int(r[8])
        elif r[13] == "SKIPDATA":
            skip[r[2]] += 1
print(f"flood took {float(t1)-float(t0):.1f} s; budget max_flows={budget} (~{int(budget)*64/2**20:.0f} MiB of table)")
print(f"RSS before traffic {int(rss0)/1024:.1f} MiB; peak RSS {int(hwm)/1024:.1f} MiB")
top = sorted(ok, key=lambda e: -ok[e])
print(f"interfaces with records: {len(set(ok) | set(skip))}; with SKIPDATA: {len(skip)}")
for e in top[:3]:
    print(f"  {e}: {ok[e]} OK records ({pk[e]} packets), {skip[e]} SKIPDATA")
print(f"  the other {max(0, len(top) - 3)}: {sum(ok[e] for e in top[3:])} OK records, {sum(skip[e] for e in top[3:])} SKIPDATA")
print(f"total OK records {sum(ok.values())} (budget {budget})")
PY
