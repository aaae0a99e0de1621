"""Suite-wide rule: under CI=true a skipped test is a failure.

CI runs as root on a machine where scripts/setup.sh installed every peer, so a test that skips
there (no root, no moto_server, no nftables, ...) is a test that silently did not run. Outside
CI a skip stays a skip, with its reason.
"""

import os

import pytest

# Network safety: flowlog and the AWS SDKs the tests start fall back to the EC2 instance
# metadata service (169.254.169.254) for credentials and region when nothing else names them.
# No test may send traffic there, so it is switched off for every process the suite starts; the
# IMDS tests turn it back on for their own process, pointed at a stand-in on loopback.
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") == "true" and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which must run every test: {reason}"
