"""Two monitored interfaces in one namespace share that namespace's NFLOG group (the kernel
lets one socket bind it): both get their REJECT records."""

from __future__ import annotations

import boto3

from lab import MOTO_KEYS, REGION, aws, config, flow_sum, run, start_serve
from test_end_to_end import s3_records, wait_until

PORT, GROUP = 9999, 9


def test_two_interfaces_one_namespace_both_get_rejects(lab, moto, tmp_path):
    # A second veth pair between the same namespaces: A 10.77.2.10 <-> B 10.77.2.20.
    if2a, if2b = lab.if_a + "x", lab.if_b + "x"
    run("ip", "link", "add", if2a, "type", "veth", "peer", "name", if2b)
    run("ip", "link", "set", if2a, "netns", lab.ns_a)
    run("ip", "link", "set", if2b, "netns", lab.ns_b)
    run("ip", "-n", lab.ns_a, "addr", "add", "10.77.2.10/24", "dev", if2a)
    run("ip", "-n", lab.ns_b, "addr", "add", "10.77.2.20/24", "dev", if2b)
    run("ip", "-n", lab.ns_a, "link", "set", if2a, "up")
    run("ip", "-n", lab.ns_b, "link", "set", if2b, "up")
    lab.reject_port(PORT, GROUP)
    inventory = lab.inventory() + f"""
[[subnet]]
name = "lab-b"
vpc = "lab"
cidr_block = "10.77.2.0/24"
[[network_interface]]
subnet = "lab-b"
interface = "{if2a}"
netns = "{lab.ns_a}"
private_ip = "10.77.2.10"
"""
    s3 = boto3.client("s3", endpoint_url=moto, region_name=REGION,
                      aws_access_key_id=MOTO_KEYS[0], aws_secret_access_key=MOTO_KEYS[1])
    s3.create_bucket(Bucket="shared")
    serve, ep = start_serve(tmp_path, config(tmp_path, moto=moto, inventory=inventory, nflog_group=GROUP))
    try:
        vpc = next(e["VpcId"] for e in aws(ep, "ec2", "describe-network-interfaces")["NetworkInterfaces"]
                   if e["PrivateIpAddress"] == lab.ip_a)
        fl = aws(ep, "ec2", "create-flow-logs", "--resource-type", "VPC", "--resource-ids", vpc,
                 "--traffic-type", "REJECT", "--log-destination-type", "s3",
                 "--log-destination", "arn:aws:s3:::shared/")["FlowLogIds"][0]
        serve.wait_for(r"capture started(.|\n)*capture started", timeout=10)
        for _ in range(3):
            lab.py(lab.ns_b, "connect", lab.ip_a, str(PORT))
            lab.py(lab.ns_b, "connect", "10.77.2.10", str(PORT))

        def both():
            recs = s3_records(s3, "shared", "", fl)[1]
            a = flow_sum(recs, lab.ip_b, lab.ip_a, "6", str(PORT), action="REJECT")[0]
            b = flow_sum(recs, "10.77.2.20", "10.77.2.10", "6", str(PORT), action="REJECT")[0]
            return (a, b) if a >= 3 and b >= 3 else None
        a, b = wait_until(both, what="REJECT records on both interfaces")
        assert a == b, (a, b)
    finally:
        serve.stop()
