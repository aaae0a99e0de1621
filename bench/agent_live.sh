#!/usr/bin/env bash
# Measures the capture agent inside `flowlog serve` at the highest packet rate a veth pair
# reaches here: a bounded UDP flood (one sending core) from namespace B to the monitored
# interface in namespace A, a flow log to the embedded S3 store, then
#   - sender packets vs packets in the delivered records (and kernel drops from the log),
#   - CPU seconds and peak RSS of the flowlog process during the flood,
#   - time from CreateFlowLogs to the first delivered object.
# Traffic stays inside the two namespaces made here; everything is removed on exit.
# Usage: sudo bench/agent_live.sh [SECONDS=10] [PAYLOAD=18]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
PAYLOAD=${2:-18}
[ "$(id -u)" = 0 ] || { echo "needs root (namespaces, AF_PACKET)"; exit 2; }
cargo build -q --release -p flowlog-cli
cargo build -q --release -p flowlog-live --example udp_flood
BIN=target/release/flowlog
FLOOD=target/release/examples/udp_flood
T=$(mktemp -d)
A=flbenA$$ B=flbenB$$ IA=fbA$$ IB=fbB$$
PID=
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
  ip netns del "$A" 2>/dev/null || true
  ip netns del "$B" 2>/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT
ip netns add "$A"; ip netns add "$B"
ip link add "$IA" type veth peer name "$IB"
ip link set "$IA" netns "$A"; ip link set "$IB" netns "$B"
ip -n "$A" addr add 10.201.0.1/24 dev "$IA"; ip -n "$B" addr add 10.201.0.2/24 dev "$IB"
ip -n "$A" link set "$IA" up; ip -n "$B" link set "$IB" up
# static neighbours: no ARP during the flood
ip -n "$B" neigh add 10.201.0.1 lladdr "$(ip -n "$A" -j link show "$IA" | python3 -c 'import json,sys;print(json.load(sys.stdin)[0]["address"])')" dev "$IB"
cat > "$T/inv.toml" <<INV
[[vpc]]
name = "bench"
cidr_block = "10.201.0.0/16"
[[subnet]]
name = "bench-a"
vpc = "bench"
cidr_block = "10.201.0.0/24"
[[network_interface]]
subnet = "bench-a"
interface = "$IA"
netns = "$A"
private_ip = "10.201.0.1"
INV
cat > "$T/cfg.toml" <<CFG
[[credentials]]
access_key_id = "AKIABENCHADMIN000001"
secret_access_key = "bench-secret-000000000000000000"
allow = ["ec2:*", "flowlog:*"]
[delivery]
window_secs = 5
close_grace_secs = 1
[agent]
window_secs = 5
sync_secs = 0.5
ring_mb = 64
inventory = "$T/inv.toml"
CFG
$BIN serve --listen 127.0.0.1:0 --data-dir "$T/data" --config "$T/cfg.toml" > "$T/out" 2> "$T/err" &
PID=$!
for _ in $(seq 100); do grep -q listening "$T/out" && break; sleep 0.1; done
EP=$(grep -o 'http://[0-9.:]*' "$T/out" || true)
[ -n "$EP" ] || { echo "flowlog serve did not start:"; cat "$T/err"; exit 1; }
export AWS_ACCESS_KEY_ID=AKIABENCHADMIN000001 AWS_SECRET_ACCESS_KEY=bench-secret-000000000000000000 AWS_DEFAULT_REGION=us-east-1 AWS_CONFIG_FILE=/dev/null
AWS=".venv/bin/aws --endpoint-url $EP --output text"
for _ in $(seq 50); do ENI=$($AWS ec2 describe-network-interfaces --filters Name=private-ip-address,Values=10.201.0.1 --query 'NetworkInterfaces[0].NetworkInterfaceId'); [ "$ENI" != None ] && break; sleep 0.2; done
T0=$(date +%s.%N)
FL=$($AWS ec2 create-flow-logs --resource-type NetworkInterface --resource-ids "$ENI" --traffic-type ALL \
      --log-destination-type s3 --log-destination arn:aws:s3:::bench/ --query 'FlowLogIds[0]')
for _ in $(seq 100); do grep -q "capture started" "$T/err" && break; sleep 0.1; done
# a first packet, to time the first delivery
ip netns exec "$B" ping -c 1 -W 1 10.201.0.1 >/dev/null
for _ in $(seq 600); do [ -n "$(find "$T/data/s3" -name '*.log.gz' 2>/dev/null | head -1)" ] && break; sleep 0.05; done
T1=$(date +%s.%N)
cpu() { awk '{print $14+$15}' /proc/$PID/stat; }
TCK=$(getconf CLK_TCK)
C0=$(cpu)
SENT=$(ip netns exec "$B" $FLOOD 10.201.0.1:9000 "$PAYLOAD" "$SECS" 40010)
C1=$(cpu)
sleep 12   # let the last window close and be delivered
HWM=$(awk '/VmHWM/{print $2}' /proc/$PID/status)
kill -TERM $PID; wait $PID || true; PID=
python3 - "$T/data/s3" "$SENT" "$SECS" "$C0" "$C1" "$TCK" "$HWM" "$T0" "$T1" "$T/err" "$PAYLOAD" <<'PY'
import gzip, pathlib, re, sys
root, sent_line, secs, c0, c1, tck, hwm, t0, t1, err, payload = sys.argv[1:]
pk = by = 0
for f in pathlib.Path(root).rglob("*.log.gz"):
    for line in gzip.decompress(f.read_bytes()).decode().splitlines()[1:]:
        r = line.split()
        if r[13] == "OK" and r[7] == "17" and r[6] == "9000":
            pk += int(r[8]); by += int(r[9])
m = re.search(r"sent=(\d+)", sent_line) or re.search(r"(\d+)", sent_line)
sent = int(m.group(1))
drops = re.findall(r"kernel_drops=(\d+)", pathlib.Path(err).read_text())
cpu = (float(c1) - float(c0)) / float(tck)
print(f"flood: {sent} UDP packets in {secs} s = {sent/float(secs)/1e3:.0f} kpps (UDP payload {payload} bytes)")
print(f"records: {pk} packets ({pk - sent:+d} vs sent), {by} bytes; kernel drops reported: {drops}")
print(f"flowlog serve during the flood: {cpu:.2f} CPU s = {100*cpu/float(secs):.0f}% of one core; peak RSS {int(hwm)/1024:.1f} MiB")
print(f"CreateFlowLogs -> first object delivered: {float(t1)-float(t0):.1f} s (agent window 5 s, S3 window 5 s)")
PY
