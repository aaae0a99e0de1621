#!/usr/bin/env bash
# Delivery benchmark (not run in CI): records/s delivered to S3 (moto_server, s3s-fs, embedded),
# CloudWatch Logs (moto_server, embedded) and Firehose (moto_server, when the binary has it), gzip bytes per record, and peak RSS while the
# S3 destination is down for 60 s under a steady record stream. Everything on 127.0.0.1.
# Usage: bench/delivery.sh [records]   (default 200000)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200000}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
cargo build -q --release -p flowlog-delivery --example deliver
BIN=$CARGO_TARGET_DIR/release/examples/deliver
MOTO=${MOTO_SERVER:-.venv/bin/moto_server}
S3S=${S3S_FS:-.tools/bin/s3s-fs}
WORK=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 300); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

MP=$(free_port); "$MOTO" -H 127.0.0.1 -p "$MP" >/dev/null 2>&1 & pids+=($!)
SP=$(free_port); mkdir -p "$WORK/s3s"; "$S3S" --host 127.0.0.1 --port "$SP" --access-key BENCHKEY --secret-key benchsecret "$WORK/s3s" >/dev/null 2>&1 & pids+=($!)
wait_port "$MP"; wait_port "$SP"
python3 - "$MP" "$SP" <<'PY'
import sys, urllib.request
for port in sys.argv[1:2]:
    urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/bench", method="PUT")).read()
PY
# s3s-fs buckets are folders of its root.
mkdir -p "$WORK/s3s/bench"

cat > "$WORK/fmt.py" <<'PY'
import json, sys
s = json.loads(sys.stdin.read())
if sys.argv[1] == "rate":
    print("records=%8d secs=%7.2f rec/s=%10.0f gz_B/rec=%5.2f peakRSS=%6.1fMiB done=%s" % (
        s["delivered"], s["total_secs"], s["records_per_sec"], s["gzip_bytes_per_record"],
        s["peak_rss_kb"] / 1024, s["done"]))
else:
    print("submitted=%d delivered=%d spooled=%.1fMiB peakRSS=%.1fMiB status=%s" % (
        s["submitted"], s["delivered"], s["pending_bytes"] / 2**20, s["peak_rss_kb"] / 1024, s["status"]))
PY
run() { local name=$1; shift; printf '%-20s ' "$name"; "$BIN" --data-dir "$WORK/$name" "$@" | python3 "$WORK/fmt.py" rate; }

run s3-embedded   --s3 arn:aws:s3:::bench --records "$N"
run s3-moto       --s3 arn:aws:s3:::bench --s3-endpoint "http://127.0.0.1:$MP" --records "$N"
run s3-s3s-fs     --s3 arn:aws:s3:::bench --s3-endpoint "http://127.0.0.1:$SP" --access-key BENCHKEY --secret-key benchsecret --records "$N"
run cwl-embedded  --cwl bench --records "$N"
run cwl-moto      --cwl bench --cwl-endpoint "http://127.0.0.1:$MP" --records "$N"
# Firehose in moto (its own S3 destination: moto writes every PutRecordBatch into bench-fh).
if "$BIN" --help | grep -q -- --firehose-endpoint; then
python3 - "$MP" <<'PY'
import json, sys, urllib.request
url = f"http://127.0.0.1:{sys.argv[1]}/"
def call(target, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers={
        "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": f"Firehose_20150804.{target}",
        "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20240101/us-east-1/firehose/aws4_request, SignedHeaders=host, Signature=0"})
    return urllib.request.urlopen(req).read()
urllib.request.urlopen(urllib.request.Request(url + "bench-fh", method="PUT")).read()
call("CreateDeliveryStream", {"DeliveryStreamName": "bench", "DeliveryStreamType": "DirectPut",
     "ExtendedS3DestinationConfiguration": {"RoleARN": "arn:aws:iam::123456789012:role/fh",
                                            "BucketARN": "arn:aws:s3:::bench-fh"}})
PY
run firehose-moto --firehose arn:aws:firehose:us-east-1:123456789012:deliverystream/bench --firehose-endpoint "http://127.0.0.1:$MP" --records "$N"
fi
DOWN=$(free_port)
printf '%-20s ' "s3-down-60s-10k/s"
"$BIN" --data-dir "$WORK/down" --s3 arn:aws:s3:::bench --s3-endpoint "http://127.0.0.1:$DOWN" \
  --stream-secs 60 --rate 10000 --window-secs 60 --flush-timeout 1 | python3 "$WORK/fmt.py" down
