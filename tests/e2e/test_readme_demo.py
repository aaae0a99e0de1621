"""The README's demo block (between `<!-- demo-start -->` and `<!-- demo-end -->`) runs as
written: namespaces and veth, `flowlog serve --config examples/demo.toml`, credentials, the
aws CLI, traffic, and the first S3 records within the `sleep 12` it gives them.

Root only. Run from a copy of the repository's `examples/` in a temp dir, with the names the
block creates given this test's `o10` prefix, the port replaced by a free one and
`target/release/flowlog` by $FLOWLOG_BIN; nothing else changes."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time

import pytest

from lab import FLOWLOG_BIN, REPO, VENV_BIN, free_port, have, is_root, run


def demo_block() -> str:
    text = (REPO / "README.md").read_text()
    m = re.search(r"<!-- demo-start -->\n```bash\n(.*?)```\n<!-- demo-end -->", text, re.S)
    assert m, "README has no demo block"
    return m.group(1)


def test_readme_demo_runs_as_written(tmp_path):
    if not is_root() or not have("ip"):
        pytest.skip("needs root and iproute2: the demo creates network namespaces")
    tag = f"{os.getpid() % 100000}"
    names = {"flowdemo-a": f"o10da{tag}", "flowdemo-b": f"o10db{tag}",
             "fd-a": f"o10fa{tag}", "fd-b": f"o10fb{tag}", "4751": str(free_port())}

    def subst(text: str) -> str:
        for k, v in names.items():
            text = re.sub(rf"(?<![\w-]){re.escape(k)}(?![\w-])", v, text)
        return text

    shutil.copytree(REPO / "examples", tmp_path / "examples")
    cfg = tmp_path / "examples" / "demo.toml"
    cfg.write_text(subst(cfg.read_text()))
    inv = tmp_path / "examples" / "demo-inventory.toml"
    inv.write_text(subst(inv.read_text()))
    # `listen` is a top-level key: put it first so it is not read as part of [agent].
    cfg.write_text(f'listen = "127.0.0.1:{names["4751"]}"\n' + cfg.read_text())
    (tmp_path / "target" / "release").mkdir(parents=True)
    os.symlink(FLOWLOG_BIN, tmp_path / "target" / "release" / "flowlog")
    script = "set -e\ntrap 'kill $(jobs -p) 2>/dev/null; wait' EXIT\n" + subst(demo_block())
    env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}", "AWS_CONFIG_FILE": "/dev/null",
           "AWS_SHARED_CREDENTIALS_FILE": "/dev/null", "FLOWLOG_LOG": "warn"}
    for k in ("FLOWLOG_CONFIG", "FLOWLOG_DATA_DIR", "FLOWLOG_LISTEN", "FLOWLOG_ENDPOINT"):
        env.pop(k, None)
    t0 = time.time()
    try:
        r = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=120)
    finally:
        for ns in (names["flowdemo-a"], names["flowdemo-b"]):
            run("ip", "netns", "del", ns, check=False)
    print(f"MEASURE README demo ran in {time.time() - t0:.1f} s")
    assert r.returncode == 0, f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    records = [line.split() for line in r.stdout.splitlines() if line.startswith("2 123456789012 eni-")]
    icmp = [x for x in records if x[7] == "1" and x[13] == "OK"]
    assert sum(int(x[8]) for x in icmp) == 10, r.stdout  # 5 echo requests + 5 replies
    assert "capturing" in r.stdout, r.stdout
