"""Issue 11, scope 5: `flowlog agent` takes its control-plane credential from its own names
(--access-key-id/--secret-access-key, FLOWLOG_ACCESS_KEY_ID/FLOWLOG_SECRET_ACCESS_KEY, or the
config's [control_plane] section), flags/env over the section, and never from AWS_* (left to
delivery): an agent given only AWS_ACCESS_KEY_ID stops at once with the migration error.

A real `flowlog serve` (its own agent off) is the control plane; the agents run on loopback with
an inventory file binding `lo` / 127.0.0.1, so a successful sync registers that ENI.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from apiharness import FLOWLOG_BIN, Cred, Server, one_process_store

GOOD = Cred("AKIAAGENTCREDTEST001", "agentCredTestSecret/00000000000000000000", ["flowlog:AgentSync"])
NO_AGENT = "\n[agent]\nenabled = false\n"
INVENTORY = """
[[vpc]]
name = "loop"
cidr_block = "127.0.0.0/16"
[[subnet]]
name = "loop-a"
vpc = "loop"
cidr_block = "127.0.0.0/24"
[[network_interface]]
subnet = "loop-a"
interface = "lo"
private_ip = "127.0.0.1"
"""


@pytest.fixture(scope="module")
def cp(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("agentcred"), config_extra=NO_AGENT, name="agentcred",
                 extra_credentials={"agent": GOOD}, tls=False, store=one_process_store())
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def clean_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FLOWLOG_"))}
    env.update({"AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
                "FLOWLOG_LOG": "info"})
    env.update(extra)
    return env


def agent_config(d: Path, section: str = "") -> Path:
    (d / "inv.toml").write_text(INVENTORY)
    p = d / "agent.toml"
    p.write_text(f'[agent]\ninventory = "inv.toml"\nsync_secs = 0.3\ncheckpoint_secs = 0\n{section}')
    return p


class Agent:
    def __init__(self, d: Path, args: list[str], env: dict):
        d.mkdir(parents=True, exist_ok=True)
        self.log = d / "agent.log"
        self.f = open(self.log, "w")
        self.p = subprocess.Popen([FLOWLOG_BIN, "agent", "--data-dir", str(d / "data"), *args],
                                  stdout=self.f, stderr=subprocess.STDOUT, env=env)

    def text(self) -> str:
        return self.log.read_text()

    def wait_for(self, needle: str, timeout: float = 20) -> None:
        end = time.time() + timeout
        while time.time() < end:
            if needle in self.text():
                return
            if self.p.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{needle!r} not in the agent's output:\n{self.text()[-3000:]}")

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(15)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.f.close()


def loopback_enis(cp: Server) -> list[dict]:
    r = cp.call("DescribeNetworkInterfaces", {})
    assert r.status == 200, r.text
    out = []
    for item in r.xml.iter():
        if (item.tag.endswith("item") and item.findtext("{*}networkInterfaceId")
                and item.findtext("{*}privateIpAddress") == "127.0.0.1"):
            out.append({"id": item.findtext("{*}networkInterfaceId"), "status": item.findtext("{*}status")})
    return out


def wait_registered(cp: Server, timeout: float = 20) -> list[dict]:
    end = time.time() + timeout
    while time.time() < end:
        # Registered from the inventory file (a sync the control plane accepted); `lo` itself
        # is not a capturable interface, so the ENI stays `available`.
        enis = loopback_enis(cp)
        if enis:
            return enis
        time.sleep(0.2)
    raise AssertionError(f"the agent's ENI was never registered: {loopback_enis(cp)}")


def test_aws_variables_alone_stop_the_agent_with_the_migration_error(cp, tmp_path):
    env = clean_env(AWS_ACCESS_KEY_ID=GOOD.key, AWS_SECRET_ACCESS_KEY=GOOD.secret, AWS_DEFAULT_REGION="us-east-1")
    cfg = agent_config(tmp_path)
    r = subprocess.run([FLOWLOG_BIN, "agent", "--control-plane", cp.url, "--data-dir", str(tmp_path / "data"),
                        "--config", str(cfg)], capture_output=True, text=True, env=env, timeout=30)
    assert r.returncode != 0, r.stdout + r.stderr
    for word in ("AWS_ACCESS_KEY_ID", "delivery", "FLOWLOG_ACCESS_KEY_ID", "FLOWLOG_SECRET_ACCESS_KEY"):
        assert word in r.stderr, f"{word} missing from: {r.stderr}"
    assert GOOD.secret not in r.stdout + r.stderr
    assert loopback_enis(cp) == [], "an agent that refused to start registered its ENI"
    # Without any credential at all: the plain error, also naming the new variables.
    r = subprocess.run([FLOWLOG_BIN, "agent", "--control-plane", cp.url, "--data-dir", str(tmp_path / "data"),
                        "--config", str(cfg)], capture_output=True, text=True, env=clean_env(), timeout=30)
    assert r.returncode != 0 and "FLOWLOG_ACCESS_KEY_ID" in r.stderr, r.stderr
    assert "no longer" not in r.stderr, r.stderr


def test_flags_override_the_section_then_section_and_env_sign_syncs(cp, tmp_path):
    """A wrong key on the command line beats a right one in [control_plane] (every sync is
    refused, nothing registered); the section's credentials_file alone then syncs; FLOWLOG_*
    beats a wrong section."""
    (tmp_path / "cred.env").write_text(
        f"export AWS_ACCESS_KEY_ID={GOOD.key}\nexport AWS_SECRET_ACCESS_KEY='{GOOD.secret}'\n")
    good_section = f'[control_plane]\nendpoint = "{cp.url}"\ncredentials_file = "cred.env"\n'
    cfg = agent_config(tmp_path, good_section)
    # AWS_* holding the right key must not matter either way.
    env = clean_env(AWS_ACCESS_KEY_ID=GOOD.key, AWS_SECRET_ACCESS_KEY=GOOD.secret)
    a = Agent(tmp_path / "a1", ["--config", str(cfg), "--access-key-id", "AKIAWRONGWRONGWRONG1",
                                "--secret-access-key", "wrong-secret-for-this-test"], env)
    try:
        a.wait_for("agent sync failed")
        time.sleep(1)
        assert a.p.poll() is None, a.text()
        assert "AKIAWRONGWRONGWRONG1 (from flags/FLOWLOG_ACCESS_KEY_ID)" in a.text(), a.text()
        assert loopback_enis(cp) == [], "a sync signed with an unknown key registered the ENI"
    finally:
        a.stop()
    assert "wrong-secret-for-this-test" not in a.text()

    a = Agent(tmp_path / "a2", ["--config", str(cfg)], env)
    try:
        a.wait_for(f"{GOOD.key} (from [control_plane] credentials_file)")
        wait_registered(cp)
        assert "agent sync failed" not in a.text(), a.text()
    finally:
        a.stop()
    assert GOOD.secret not in a.text()

    bad_section = ('[control_plane]\nendpoint = "http://127.0.0.1:9"\n'
                   'access_key_id = "AKIAWRONGWRONGWRONG2"\nsecret_access_key = "wrong-section-secret"\n')
    cfg = agent_config(tmp_path, bad_section)
    a = Agent(tmp_path / "a3", ["--config", str(cfg)],
              clean_env(FLOWLOG_CONTROL_PLANE=cp.url, FLOWLOG_ACCESS_KEY_ID=GOOD.key,
                        FLOWLOG_SECRET_ACCESS_KEY=GOOD.secret, FLOWLOG_REGION="us-east-1"))
    try:
        a.wait_for(f"syncing with {cp.url} every 0.3s as {GOOD.key} (from flags/FLOWLOG_ACCESS_KEY_ID)")
        time.sleep(1.5)  # several syncs
        assert a.p.poll() is None, a.text()
        assert "agent sync failed" not in a.text(), a.text()
        wait_registered(cp)
    finally:
        a.stop()
    assert GOOD.secret not in a.text()
