#!/usr/bin/env bash
# Record-format benchmark (issue 12; not run in CI): on one pcap, `flowlog pcap` with the v2
# format and with the longest LogFormat (every VPC field), as text, text + gzip (level 6, what
# delivery writes) and Parquet (GZIP pages, what delivery writes): wall seconds, records/s and
# bytes per record. Usage: bench/formats.sh FILE.pcap [interval]   (release binary)
set -euo pipefail
cd "$(dirname "$0")/.."
PCAP=${1:?usage: bench/formats.sh FILE.pcap [interval]}
IV=${2:-60}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
cargo build -q --release -p flowlog-cli
BIN=$CARGO_TARGET_DIR/release/flowlog
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
LONGEST=$(printf '${%s} ' version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes \
  start end action log-status vpc-id subnet-id instance-id tcp-flags type pkt-srcaddr pkt-dstaddr region az-id \
  sublocation-type sublocation-id pkt-src-aws-service pkt-dst-aws-service flow-direction traffic-path \
  ecs-cluster-arn ecs-cluster-name ecs-container-instance-arn ecs-container-instance-id ecs-container-id \
  ecs-second-container-id ecs-service-name ecs-task-definition-arn ecs-task-arn ecs-task-id reject-reason)
LONGEST=${LONGEST% }
CTX=(--vpc-id vpc-0123456789abcdef0 --subnet-id subnet-0123456789abcdef0 --instance-id i-0123456789abcdef0
     --region us-east-1 --az-id use1-az1 --vpc-cidr 10.0.0.0/8 --address 10.99.0.3)
# warm the page cache
cat "$PCAP" > /dev/null
run() { # name, output, args...
  local name=$1 out=$2; shift 2
  local t0 t1
  t0=$(date +%s.%N)
  "$BIN" pcap "$PCAP" --interval "$IV" --capacity 4000000 --out "$out" "$@" 2> "$WORK/$name.err"
  t1=$(date +%s.%N)
  python3 -c "print(f'{float(\"$t1\") - float(\"$t0\"):.3f}')"
}
echo "uptime: $(uptime)"
for fmt in v2 longest; do
  if [ $fmt = v2 ]; then args=(); else args=(--log-format "$LONGEST" "${CTX[@]}"); fi
  t_text=$(run "$fmt-text" "$WORK/$fmt.log" "${args[@]}")
  n=$(wc -l < "$WORK/$fmt.log")
  t0=$(date +%s.%N); gzip -6 -c "$WORK/$fmt.log" > "$WORK/$fmt.log.gz"; t1=$(date +%s.%N)
  t_gz=$(python3 -c "print(f'{$t1 - $t0:.3f}')")
  t_pq=$(run "$fmt-pq" "$WORK/$fmt.parquet" --file-format parquet "${args[@]}")
  python3 - "$fmt" "$n" "$t_text" "$t_gz" "$t_pq" "$(stat -c %s "$WORK/$fmt.log")" \
      "$(stat -c %s "$WORK/$fmt.log.gz")" "$(stat -c %s "$WORK/$fmt.parquet")" <<'PY'
import sys
fmt, n, t_text, t_gz, t_pq, b_text, b_gz, b_pq = sys.argv[1], int(sys.argv[2]), *map(float, sys.argv[3:6]), *map(int, sys.argv[6:9])
print(f"{fmt:8} records {n}: text {t_text:.2f} s ({n/t_text/1e6:.2f} M rec/s, {b_text/n:.1f} B/rec)"
      f" | text+gzip {t_text+t_gz:.2f} s ({n/(t_text+t_gz)/1e6:.2f} M rec/s, {b_gz/n:.1f} B/rec)"
      f" | parquet {t_pq:.2f} s ({n/t_pq/1e6:.2f} M rec/s, {b_pq/n:.1f} B/rec)")
PY
done
