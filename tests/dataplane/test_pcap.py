"""`flowlog pcap` end to end: exact counts against the generator's ground truth, both
capture formats, and clear errors for bad input."""

import json
import subprocess

import pytest


def run_pcap(flowlog_bin, *args):
    return subprocess.run([flowlog_bin, "pcap", *map(str, args)], capture_output=True, text=True)


def totals(text):
    """(lines, packets, bytes) over the v2 OK records of a flowlog output."""
    n = p = b = 0
    for line in text.splitlines():
        f = line.split()
        if len(f) == 14 and f[0] == "2" and f[13] == "OK":
            n += 1
            p += int(f[8])
            b += int(f[9])
    return n, p, b


@pytest.mark.parametrize(
    "gen_args",
    [
        ["--packets", "30000", "--seed", "3"],
        ["--packets", "20000", "--seed", "11", "--v6-pct", "60", "--active", "300", "--duration-s", "1300"],
        ["--packets", "20000", "--seed", "5", "--snaplen", "96", "--start-epoch", "1700000030"],
    ],
)
def test_ground_truth(flowlog_bin, flowgen, tmp_path, gen_args):
    pcap = tmp_path / "g.pcap"
    subprocess.run([flowgen, "--out", str(pcap), *gen_args], check=True, capture_output=True)
    truth = json.loads((tmp_path / "g.pcap.summary.json").read_text())
    for interval, key in [(60, "records_60s_windows"), (600, "records_600s_windows")]:
        out = tmp_path / f"out{interval}.log"
        r = run_pcap(flowlog_bin, pcap, "--interval", interval, "--out", out, "--eni", "eni-0a1b2c3d4e5f60718")
        assert r.returncode == 0, r.stderr
        lines, packets, nbytes = totals(out.read_text())
        assert (lines, packets, nbytes) == (truth[key], truth["ip_packets"], truth["ip_bytes"])
        # ARP frames are reported as skipped
        assert f"not IP: {truth['non_ip_packets']}" in r.stderr
        # every record stays inside one epoch-aligned window
        for line in out.read_text().splitlines():
            f = line.split()
            assert int(f[10]) // interval == int(f[11]) // interval
            assert f[2] == "eni-0a1b2c3d4e5f60718"


def test_real_capture_pcap_and_pcapng_agree(flowlog_bin, shared_data, tmp_path):
    a = run_pcap(flowlog_bin, shared_data / "real-h1.pcap", "--interval", "60", "--header")
    b = run_pcap(flowlog_bin, shared_data / "real-h1.pcapng", "--interval", "60", "--header")
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    assert a.stdout == b.stdout
    lines = a.stdout.splitlines()
    assert lines[0] == (
        "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status"
    )
    assert len(lines) > 10
    # ICMPv6 records carry ports 0 and canonical IPv6 text
    icmp6 = [line.split() for line in lines[1:] if line.split()[7] == "58"]
    assert icmp6 and all(f[5] == "0" and f[6] == "0" and ":" in f[3] for f in icmp6)
    assert "pcapng" in b.stderr


def test_missing_file_and_not_a_capture(flowlog_bin, tmp_path):
    r = run_pcap(flowlog_bin, tmp_path / "nope.pcap")
    assert r.returncode != 0
    assert "cannot open capture file" in r.stderr
    junk = tmp_path / "junk.pcap"
    junk.write_text("this is not a capture file at all\n")
    r = run_pcap(flowlog_bin, junk)
    assert r.returncode != 0
    assert "not a pcap or pcapng file" in r.stderr
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    r = run_pcap(flowlog_bin, empty)
    assert r.returncode != 0 and "empty" in r.stderr
    r = run_pcap(flowlog_bin, junk, "--interval", "0")
    assert r.returncode != 0 and "--interval" in r.stderr


def test_truncated_file_keeps_complete_records(flowlog_bin, flowgen, tmp_path):
    pcap = tmp_path / "t.pcap"
    subprocess.run([flowgen, "--out", str(pcap), "--packets", "2000", "--seed", "9"], check=True, capture_output=True)
    data = pcap.read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[: len(data) - 7])
    full = run_pcap(flowlog_bin, pcap, "--interval", "60")
    part = run_pcap(flowlog_bin, cut, "--interval", "60")
    assert full.returncode == 0
    assert part.returncode != 0
    assert "truncated" in part.stderr
    _, p_full, _ = totals(full.stdout)
    n_part, p_part, _ = totals(part.stdout)
    assert n_part > 0
    # exactly the last packet is missing
    assert p_part == p_full - 1


def test_capacity_reports_skipdata(flowlog_bin, flowgen, tmp_path):
    pcap = tmp_path / "c.pcap"
    subprocess.run([flowgen, "--out", str(pcap), "--packets", "5000", "--seed", "2"], check=True, capture_output=True)
    r = run_pcap(flowlog_bin, pcap, "--interval", "600", "--capacity", "50")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    skip = [line for line in lines if line.endswith(" SKIPDATA")]
    assert len(skip) >= 1
    assert all(line.split()[3:10] == ["-"] * 7 and line.split()[12] == "-" for line in skip)
    assert "over capacity (SKIPDATA)" in r.stderr


def test_output_errors(flowlog_bin, shared_data):
    r = run_pcap(flowlog_bin, shared_data / "real-h2.pcap", "--out", "/dev/full")
    assert r.returncode != 0
    assert "cannot write records" in r.stderr
    # a reader that goes away early is not an error
    p = subprocess.Popen([flowlog_bin, "pcap", str(shared_data / "real-h1.pcap")], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.close()
    _, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
