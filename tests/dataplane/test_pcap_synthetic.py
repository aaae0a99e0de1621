"""`flowlog pcap` on small capture files written here byte by byte: out-of-order packets across
window boundaries, pcapng with nanosecond timestamps and Linux cooked v2 frames, VLAN tags,
IPv4 fragments and the excluded addresses."""

import struct
import subprocess


def ipv4(src, dst, proto, payload, frag=0):
    total = 20 + len(payload)
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 1, frag, 64, proto, 0, bytes(src), bytes(dst))
    return hdr + payload


def udp(sp, dp, n):
    return struct.pack("!HHHH", sp, dp, 8 + n, 0) + b"\0" * n


def tcp(sp, dp, flags, n):
    return struct.pack("!HHIIBBHHH", sp, dp, 0, 0, 5 << 4, flags, 1000, 0, 0) + b"\0" * n


def eth(l3, vlan=None):
    tag = struct.pack("!HH", 0x8100, vlan) if vlan is not None else b""
    return b"\x02" * 6 + b"\x04" * 6 + tag + struct.pack("!H", 0x0800) + l3


def pcap(records, link=1):
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, link)
    for ts, frame in records:
        sec, usec = int(ts), round((ts - int(ts)) * 1e6)
        out += struct.pack("<IIII", sec, usec, len(frame), len(frame)) + frame
    return out


A, B = [10, 1, 0, 1], [10, 1, 0, 2]
T0 = 1_700_000_040  # a multiple of 60


def run(flowlog_bin, path, *args):
    r = subprocess.run([flowlog_bin, "pcap", str(path), *map(str, args)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return [line.split() for line in r.stdout.splitlines()], r.stderr


def test_reordered_packets_across_a_window_boundary(flowlog_bin, tmp_path):
    p = eth(ipv4(A, B, 17, udp(1000, 2000, 10)))
    recs = [
        (T0 + 59.5, p),
        (T0 + 60.2, p),  # next window opens
        (T0 + 59.9, p),  # late by less than a window: still counted in the first
        (T0 + 121.0, p),  # a third window closes the first
        (T0 + 30.0, p),  # very late: its window was closed, it gets a record of its own
    ]
    f = tmp_path / "r.pcap"
    f.write_bytes(pcap(recs))
    lines, err = run(flowlog_bin, f, "--interval", "60")
    got = [(int(x[8]), int(x[10]), int(x[11])) for x in lines]
    assert sorted(got) == sorted([(2, T0 + 59, T0 + 59), (1, T0 + 60, T0 + 60), (1, T0 + 121, T0 + 121), (1, T0 + 30, T0 + 30)])
    assert all(int(x[9]) == 38 * int(x[8]) for x in lines)
    assert "out of order beyond one window: 1" in err


def test_vlan_fragments_and_exclusions(flowlog_bin, tmp_path):
    first = ipv4(A, B, 17, udp(5000, 6000, 100)[:48], frag=0x2000)
    later = ipv4(A, B, 17, b"\0" * 60, frag=6)
    recs = [
        (T0 + 1, eth(first, vlan=100)),
        (T0 + 2, eth(later, vlan=100)),
        (T0 + 3, eth(ipv4(A, [169, 254, 169, 254], 6, tcp(40000, 80, 2, 0)))),
        (T0 + 4, eth(ipv4([0, 0, 0, 0], [255, 255, 255, 255], 17, udp(68, 67, 300)))),
        (T0 + 5, eth(ipv4(A, [169, 254, 169, 123], 17, udp(123, 123, 48)))),
        (T0 + 6, eth(ipv4(B, A, 6, tcp(80, 40000, 0x12, 0)))),
        (T0 + 7, b"\xff" * 12 + b"\x08\x06" + b"\0" * 28),  # ARP
        (T0 + 8, eth(b"\x45\x00")),  # truncated IPv4
    ]
    f = tmp_path / "v.pcap"
    f.write_bytes(pcap(recs))
    lines, err = run(flowlog_bin, f, "--interval", "600")
    got = sorted((x[3], x[4], x[5], x[6], x[7], x[8], x[9]) for x in lines)
    # the later fragment (same IP ID) joins the flow of its first fragment
    assert got == sorted([
        ("10.1.0.1", "10.1.0.2", "5000", "6000", "17", "2", "148"),
        ("10.1.0.2", "10.1.0.1", "80", "40000", "6", "1", "40"),
    ])
    assert "excluded (metadata/time/DHCP): 3" in err
    assert "not IP: 1" in err and "truncated IP header: 1" in err


def test_pcapng_nanoseconds_and_sll2(flowlog_bin, tmp_path):
    def block(btype, body):
        body += b"\0" * (-len(body) % 4)
        n = 12 + len(body)
        return struct.pack(">II", btype, n) + body + struct.pack(">I", n)

    shb = block(0x0A0D0D0A, struct.pack(">IHHq", 0x1A2B3C4D, 1, 0, -1))
    # interface 0: SLL2 with if_tsresol = 9 (nanoseconds)
    idb = block(1, struct.pack(">HHI", 276, 0, 0) + struct.pack(">HHB3x", 9, 1, 9) + struct.pack(">HH", 0, 0))
    v6 = struct.pack("!IHBB16s16s", 0x60000000, 8 + 12, 17, 64, b"\xfd" + b"\0" * 14 + b"\x01", b"\xfd" + b"\0" * 14 + b"\x02")
    frame = struct.pack("!HHIHBB8s", 0x86DD, 0, 3, 1, 0, 6, b"\0" * 8) + v6 + udp(53, 5353, 12)
    epbs = b""
    for i in range(3):
        ts = (T0 + 10) * 1_000_000_000 + i * 999_999_999
        epbs += block(6, struct.pack(">IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(frame), len(frame)) + frame)
    f = tmp_path / "n.pcapng"
    f.write_bytes(shb + idb + epbs)
    lines, err = run(flowlog_bin, f, "--interval", "60", "--account", "111122223333", "--eni", "eni-0123456789abcdef0")
    assert [" ".join(x) for x in lines] == [
        f"2 111122223333 eni-0123456789abcdef0 fd00::1 fd00::2 53 5353 17 3 180 {T0 + 10} {T0 + 11} ACCEPT OK"
    ]
    assert "pcapng" in err


def test_wild_timestamps_stay_exact(flowlog_bin, tmp_path):
    p = eth(ipv4(A, B, 17, udp(1000, 2000, 10)))
    recs = [(T0 + 10_000_000, p)]
    # 600 packets, each in a different window long before the first one
    recs += [(T0 + 60 * i + 1, p) for i in range(600)]
    recs += [(T0 + 10_000_000, p)]
    f = tmp_path / "w.pcap"
    f.write_bytes(pcap(recs))
    lines, err = run(flowlog_bin, f, "--interval", "60")
    assert sum(int(x[8]) for x in lines) == 602
    # every old window is its own record; the two newest packets may share one or not
    assert 601 <= len(lines) <= 602
    assert "out of order beyond one window: 600" in err
