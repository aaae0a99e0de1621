"""Issue 11, "Tests that must exist": `flowlog serve` delivers to moto_server with NO keys in its
config, the credentials coming from the AWS default chain: environment variables, a profile
with role_arn + source_profile, a web identity token file, and an IMDSv2 stand-in whose keys
expire during the run. The recording proxy in front of moto proves which key signed each call
(and that CloudWatch Logs calls carry the session token STS handed out for the flow log's
DeliverLogsPermissionArn); every record sent is delivered exactly once.
"""

from __future__ import annotations

import time

from awsrig import (ROLE, ImdsStandIn, Traffic, calls_summary, cwl_records, flow_log_cwl, flow_log_s3,
                    flow_log_status, hermetic_env, s3_records, sections, src_ports, start_case,
                    wait_capturing, wait_records)

ENV_KEY = ("AKIAENVDELIVERY00001", "envDeliverySecret/0000000000000000000000")


def test_environment_credentials_sign_s3_and_assume_the_cwl_role(tmp_path, lab, moto, proxy):
    """(a) AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY only: S3 calls are signed with them; the
    CloudWatch Logs flow log's role is assumed with them (session name flowlog-<fl-id>), and
    every CloudWatch Logs call is signed with the assumed key and carries its session token."""
    env = hermetic_env(tmp_path, AWS_ACCESS_KEY_ID=ENV_KEY[0], AWS_SECRET_ACCESS_KEY=ENV_KEY[1],
                       AWS_REGION="us-east-1", AWS_ENDPOINT_URL=proxy.url)
    serve, api, eni = start_case(tmp_path, lab, env, sections(proxy.url), buckets=("env-bucket",), moto=moto)
    try:
        fl_s3 = flow_log_s3(api, eni["VpcId"], "env-bucket", "env/")
        fl_cwl = flow_log_cwl(api, eni["VpcId"], "/flowlog/env")
        wait_capturing(serve, eni["NetworkInterfaceId"])
        t = Traffic(lab)
        t.send(40)
        s3 = wait_records(lambda: s3_records(moto, "env-bucket", fl_s3, lab), t.sent)
        cwl = wait_records(lambda: cwl_records(moto, "/flowlog/env", lab), t.sent)
        assert len(s3) == t.sent and src_ports(s3) == list(range(20000, 20000 + t.sent)), (len(s3), serve.text()[-3000:])
        assert len(cwl) == t.sent and src_ports(cwl) == list(range(20000, 20000 + t.sent)), (len(cwl), serve.text()[-3000:])
        assert flow_log_status(api, fl_s3) == ("SUCCESS", None)
        assert flow_log_status(api, fl_cwl) == ("SUCCESS", None)

        calls = proxy.snapshot()
        s3_calls = [c for c in calls if c.service == "s3"]
        assert [c for c in s3_calls if c.target.startswith("PUT") and ".log.gz" in c.path], calls_summary(calls)
        assert {(c.key, c.token) for c in s3_calls} == {(ENV_KEY[0], None)}, calls_summary(s3_calls)

        assume = proxy.sts_calls("AssumeRole")
        assert assume, "the DeliverLogsPermissionArn was never assumed:\n" + calls_summary(calls)
        assert {c.key for c in assume} == {ENV_KEY[0]}
        assert {c.form.get("RoleArn") for c in assume} == {ROLE}
        assert {c.form.get("RoleSessionName") for c in assume} == {f"flowlog-{fl_cwl}"}
        assert len(assume) <= 2, f"the assumed credentials are not cached:\n{calls_summary(assume)}"

        logs = [c for c in calls if c.service == "logs"]
        assert any(c.target.endswith("PutLogEvents") for c in logs), calls_summary(calls)
        for c in logs:
            issued = proxy.issued.get(c.key)
            assert issued is not None and issued.role == ROLE, f"{c.target} not signed by the assumed role: {c.key}"
            assert c.token == issued.token, f"{c.target} without the assumed role's session token"
        assert {c.service for c in calls} <= {"s3", "logs", "sts"}, calls_summary(calls)
    finally:
        serve.stop()


def test_profile_with_role_arn_and_source_profile(tmp_path, lab, moto, proxy):
    """(b) AWS_PROFILE names a profile with role_arn + source_profile in AWS_CONFIG_FILE, the
    source keys in AWS_SHARED_CREDENTIALS_FILE; empty [s3]/[sts] sections, endpoints from
    AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL_STS (AWS_ENDPOINT_URL points at a closed port, so a
    client that ignored the per-service variables would fail)."""
    base = ("AKIAPROFILEBASE00001", "profileBaseSecret/000000000000000000000")
    role = "arn:aws:iam::123456789012:role/profile-delivery"
    env = hermetic_env(tmp_path, AWS_PROFILE="delivery", AWS_ENDPOINT_URL="http://127.0.0.1:9",
                       AWS_ENDPOINT_URL_S3=proxy.url, AWS_ENDPOINT_URL_STS=proxy.url,
                       AWS_ENDPOINT_URL_CLOUDWATCH_LOGS=proxy.url)
    (tmp_path / "aws-config").write_text(
        f"[profile delivery]\nrole_arn = {role}\nsource_profile = base\nrole_session_name = flowlog-profile-test\n"
        "region = us-east-1\n\n[profile base]\nregion = us-east-1\n")
    (tmp_path / "aws-credentials").write_text(
        f"[base]\naws_access_key_id = {base[0]}\naws_secret_access_key = {base[1]}\n")
    serve, api, eni = start_case(tmp_path, lab, env, sections(None, cwl=False), buckets=("profile-bucket",), moto=moto)
    try:
        fl = flow_log_s3(api, eni["VpcId"], "profile-bucket")
        wait_capturing(serve, eni["NetworkInterfaceId"])
        t = Traffic(lab)
        t.send(30)
        got = wait_records(lambda: s3_records(moto, "profile-bucket", fl, lab), t.sent)
        assert len(got) == t.sent and src_ports(got) == list(range(20000, 20030)), (len(got), serve.text()[-3000:])
        assert flow_log_status(api, fl) == ("SUCCESS", None)

        calls = proxy.snapshot()
        assume = [c for c in proxy.sts_calls("AssumeRole") if c.form.get("RoleArn") == role]
        assert assume, "the profile's role was never assumed:\n" + calls_summary(calls)
        assert {c.key for c in assume} == {base[0]}, "AssumeRole not signed by the source_profile's key"
        assert {c.form.get("RoleSessionName") for c in assume} == {"flowlog-profile-test"}
        s3_calls = [c for c in calls if c.service == "s3"]
        assert s3_calls
        for c in s3_calls:
            issued = proxy.issued.get(c.key)
            assert issued is not None and issued.role == role, f"S3 call signed by {c.key}, not the profile's role"
            assert c.token == issued.token
    finally:
        serve.stop()


def test_web_identity_token_file(tmp_path, lab, moto, proxy):
    """(c) AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN (IRSA): AssumeRoleWithWebIdentity at
    moto's STS (unsigned, with the file's token), then S3 signed with what it returned."""
    role = "arn:aws:iam::123456789012:role/irsa-delivery"
    token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6Zmxvd2xvZyJ9.c2lnbmF0dXJl"
    (tmp_path / "web-identity-token").write_text(token)
    env = hermetic_env(tmp_path, AWS_WEB_IDENTITY_TOKEN_FILE=str(tmp_path / "web-identity-token"),
                       AWS_ROLE_ARN=role, AWS_ROLE_SESSION_NAME="flowlog-irsa-test", AWS_REGION="us-east-1",
                       AWS_ENDPOINT_URL_STS=proxy.url, AWS_ENDPOINT_URL=proxy.url)
    serve, api, eni = start_case(tmp_path, lab, env, sections(proxy.url, cwl=False), buckets=("irsa-bucket",),
                                 moto=moto)
    try:
        fl = flow_log_s3(api, eni["VpcId"], "irsa-bucket")
        wait_capturing(serve, eni["NetworkInterfaceId"])
        t = Traffic(lab)
        t.send(30)
        got = wait_records(lambda: s3_records(moto, "irsa-bucket", fl, lab), t.sent)
        assert len(got) == t.sent and src_ports(got) == list(range(20000, 20030)), (len(got), serve.text()[-3000:])
        assert flow_log_status(api, fl) == ("SUCCESS", None)

        calls = proxy.snapshot()
        wi = proxy.sts_calls("AssumeRoleWithWebIdentity")
        assert wi, "AssumeRoleWithWebIdentity was never called:\n" + calls_summary(calls)
        assert {(c.key, c.form.get("RoleArn"), c.form.get("WebIdentityToken")) for c in wi} == {(None, role, token)}
        s3_calls = [c for c in calls if c.service == "s3"]
        assert s3_calls
        for c in s3_calls:
            issued = proxy.issued.get(c.key)
            assert issued is not None and issued.by == "sts:AssumeRoleWithWebIdentity", \
                f"S3 call signed by {c.key}, not the web identity's credentials"
            assert c.token == issued.token
    finally:
        serve.stop()


def test_imds_credentials_expire_and_are_renewed_mid_run(tmp_path, lab, moto, proxy):
    """(d) Instance-profile keys from an IMDSv2 stand-in (AWS_EC2_METADATA_SERVICE_ENDPOINT)
    that live 30 s: over ~60 s of traffic the SDK fetches new keys before the old expire; no
    call is signed with an expired key and no record is lost or doubled."""
    imds = ImdsStandIn(lifetime=30, rotate_before=18).start()
    try:
        env = hermetic_env(tmp_path, AWS_EC2_METADATA_DISABLED=None, AWS_EC2_METADATA_SERVICE_ENDPOINT=imds.url,
                           AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE="IPv4", AWS_ENDPOINT_URL=proxy.url)
        serve, api, eni = start_case(tmp_path, lab, env, sections(proxy.url, cwl=False), buckets=("imds-bucket",),
                                     moto=moto)
        try:
            fl = flow_log_s3(api, eni["VpcId"], "imds-bucket")
            wait_capturing(serve, eni["NetworkInterfaceId"])
            t = Traffic(lab)
            end = time.time() + 60
            while time.time() < end:
                t.send(10)
                time.sleep(3)
            got = wait_records(lambda: s3_records(moto, "imds-bucket", fl, lab), t.sent, timeout=60)
            assert len(got) == t.sent, (len(got), t.sent, serve.text()[-3000:])
            assert src_ports(got) == list(range(20000, 20000 + t.sent)), "records lost or doubled"
            assert flow_log_status(api, fl) == ("SUCCESS", None)

            keys = {c.key: c for c in imds.issued}
            puts = [c for c in proxy.of("s3") if c.target.startswith("PUT") and ".log.gz" in c.path]
            assert puts, calls_summary(proxy.snapshot())
            for c in proxy.of("s3"):
                assert c.key in keys, f"S3 call signed by {c.key}, not an IMDS key"
                assert c.token == keys[c.key].token
                assert c.t < keys[c.key].expiration, f"{c.target} signed with {c.key} after it expired"
            used = {c.key for c in puts}
            assert len(used) >= 3, f"keys were not renewed during the run: {sorted(used)} of {sorted(keys)}"
            assert not any(s == 401 for *_, s in imds.requests), "the SDK used IMDS without a v2 token"
        finally:
            serve.stop()
    finally:
        imds.stop()
