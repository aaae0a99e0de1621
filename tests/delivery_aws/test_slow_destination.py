"""Issue 11 scope 7: a destination that accepts connections and never answers (the proxy holds
every PutObject for one bucket) does not delay another flow log's delivery beyond one window;
when it answers again, its records arrive too, each exactly once."""

from __future__ import annotations

import time

from awsrig import (Fault, Traffic, calls_summary, flow_log_s3, hermetic_env, s3_records, sections, src_ports,
                    start_case, wait_capturing, wait_records)

ENV_KEY = ("AKIAENVDELIVERY00003", "envDeliverySecret/2222222222222222222222")
CAPTURE_WINDOW, DELIVERY_WINDOW, GRACE = 2, 4, 1  # awsrig.serve_config


def test_hanging_bucket_does_not_delay_another_flow_log(tmp_path, lab, moto, proxy):
    def hang_stuck_objects(c):
        return Fault(hang=True) if c.bucket == "stuck-bucket" and c.method == "PUT" and ".log.gz" in c.path else None

    proxy.fault = hang_stuck_objects
    env = hermetic_env(tmp_path, AWS_ACCESS_KEY_ID=ENV_KEY[0], AWS_SECRET_ACCESS_KEY=ENV_KEY[1],
                       AWS_REGION="us-east-1", AWS_ENDPOINT_URL=proxy.url)
    serve, api, eni = start_case(tmp_path, lab, env, sections(proxy.url, cwl=False, sts=False),
                                 buckets=("stuck-bucket", "flowing-bucket"), moto=moto)
    try:
        stuck = flow_log_s3(api, eni["VpcId"], "stuck-bucket")
        flowing = flow_log_s3(api, eni["VpcId"], "flowing-bucket")
        wait_capturing(serve, eni["NetworkInterfaceId"])
        t = Traffic(lab)
        t.send(20)
        end = time.time() + 30
        while proxy.hanging == 0 and time.time() < end:
            time.sleep(0.2)
        assert proxy.hanging > 0, "the stuck bucket's PutObject never started:\n" + calls_summary(proxy.snapshot())

        # While that request hangs, more traffic: the other flow log gets it within one window
        # (plus the capture window that closes first, the close grace and some slack).
        started = time.time()
        t.send(20)
        deadline = CAPTURE_WINDOW + DELIVERY_WINDOW + GRACE + 5
        got = []
        while time.time() < started + deadline + 0.5:
            got = s3_records(moto, "flowing-bucket", flowing, lab)
            if len(got) >= t.sent:
                break
            time.sleep(0.5)
        took = time.time() - started
        assert len(got) == t.sent, (f"{len(got)}/{t.sent} records in the flowing bucket {took:.1f}s after the "
                                    f"traffic while the other bucket hangs:\n{calls_summary(proxy.snapshot())}")
        assert took <= deadline + 0.5, took
        assert proxy.hanging > 0, "the measurement is void: the hanging request ended before the other delivered"
        assert s3_records(moto, "stuck-bucket", stuck, lab) == []

        # The stuck bucket answers again: all its records arrive, once.
        proxy.fault = None
        proxy.release.set()
        got = wait_records(lambda: s3_records(moto, "stuck-bucket", stuck, lab), t.sent, timeout=120)
        assert len(got) == t.sent and src_ports(got) == list(range(20000, 20000 + t.sent)), \
            (len(got), serve.text()[-3000:])
        got = s3_records(moto, "flowing-bucket", flowing, lab)
        assert len(got) == t.sent and src_ports(got) == list(range(20000, 20000 + t.sent))
    finally:
        proxy.release.set()
        serve.stop()
