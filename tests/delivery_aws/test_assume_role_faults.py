"""Issue 11 scope 3: STS refusing the flow log's DeliverLogsPermissionArn is reported as AWS
reports it (DeliverLogsStatus FAILED, DeliverLogsErrorMessage `Access error`, read with boto3's
DescribeFlowLogs), nothing reaches CloudWatch Logs meanwhile, and once STS grants the role the
status returns to SUCCESS and every record kept in the spool is delivered exactly once."""

from __future__ import annotations

import time

from awsrig import (ROLE, Fault, Traffic, calls_summary, cwl_records, flow_log_cwl, flow_log_status, hermetic_env,
                    sections, src_ports, start_case, wait_capturing, wait_records)

ENV_KEY = ("AKIAENVDELIVERY00002", "envDeliverySecret/1111111111111111111111")


def wait_status(api: str, fl: str, want: tuple, timeout: float = 60) -> tuple:
    end = time.time() + timeout
    got = flow_log_status(api, fl)
    while got != want and time.time() < end:
        time.sleep(0.5)
        got = flow_log_status(api, fl)
    return got


def test_sts_access_denied_is_failed_access_error_then_success(tmp_path, lab, moto, proxy):
    proxy.fault = lambda c: Fault.sts_access_denied() if c.service == "sts" and c.target == "AssumeRole" else None
    env = hermetic_env(tmp_path, AWS_ACCESS_KEY_ID=ENV_KEY[0], AWS_SECRET_ACCESS_KEY=ENV_KEY[1],
                       AWS_REGION="us-east-1", AWS_ENDPOINT_URL=proxy.url)
    serve, api, eni = start_case(tmp_path, lab, env, sections(proxy.url, s3=False), moto=moto)
    try:
        fl = flow_log_cwl(api, eni["VpcId"], "/flowlog/denied")
        wait_capturing(serve, eni["NetworkInterfaceId"])
        t = Traffic(lab)
        t.send(25)
        assert wait_status(api, fl, ("FAILED", "Access error")) == ("FAILED", "Access error"), \
            calls_summary(proxy.snapshot()) + "\n" + serve.text()[-3000:]
        denied = proxy.sts_calls("AssumeRole")
        assert denied and {c.status for c in denied} == {403}
        assert {(c.key, c.form.get("RoleArn"), c.form.get("RoleSessionName")) for c in denied} == \
            {(ENV_KEY[0], ROLE, f"flowlog-{fl}")}
        assert not [c for c in proxy.of("logs") if c.target.endswith("PutLogEvents")], \
            "events were sent without the role's credentials"

        proxy.fault = None  # STS grants the role from now on
        t.send(15)
        assert wait_status(api, fl, ("SUCCESS", None)) == ("SUCCESS", None), serve.text()[-3000:]
        got = wait_records(lambda: cwl_records(moto, "/flowlog/denied", lab), t.sent)
        assert len(got) == t.sent and src_ports(got) == list(range(20000, 20000 + t.sent)), \
            (len(got), t.sent, serve.text()[-3000:])
        granted = [c for c in proxy.sts_calls("AssumeRole") if c.status == 200]
        assert granted
        for c in proxy.of("logs"):
            issued = proxy.issued.get(c.key)
            assert issued is not None and issued.role == ROLE and c.token == issued.token, \
                f"{c.target} not signed with the assumed role's credentials"
    finally:
        serve.stop()
