# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""The failure and bad-input matrix: every role and module refuses bad input before any change.

One ansible-playbook run on one host (an empty network namespace entered by the host's Python)
tries every case of CASES in its own block; the rescue records the error. Each case must fail
with a message naming the field and the value (never a password's value), reported by Ansible
under the host (``fatal: [host]``) - and afterwards the host has nothing: no link but lo, no
route, no workload namespace, no nftables table, no state or sysctl file.

The IPAM's own 88 cases (pools, config, reservations, nodes, workloads, remove_nodes, immutable
pools, strict affinity, evacuate, and dual stack: IPv6 block sizes outside 116..128, pools mixing
families, IPIP on an IPv6 pool, calico_node_ipv6 without prefix or of the wrong family, ...) are in
tests/unit/plugins/modules/test_ipam_bad_input.py (they also prove the state file is unchanged); the
playbooks' node-remove and audit refusals in test_node_remove.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.netns

ROOT = Path(__file__).resolve().parents[3]
HOST = "l3tday2-mx-host"
NS = "l3tday2-mx-h"
SECRET = 'l3tday2-Sup3r"secret'  # has a quote: refused, and never echoed
SECRET_NL = "l3tday2-Sup3r-secret\n"  # a vaulted password's trailing newline: refused by us, never echoed

GOOD_IPAM = {
    "changed": False,
    "problems": [],
    "nodes": {
        HOST: {
            "ip": "192.168.77.10",
            "network": "192.168.77.0/24",
            "blocks": [{"cidr": "172.17.0.0/26", "pool": "p1"}],
            "workloads": [],
            "borrowed": [],
            "tunnels": {"ipip": None, "vxlan": None},
        },
    },
    "pools": {
        "p1": {
            "cidr": "172.17.0.0/16",
            "block_size": 26,
            "ipip_mode": "Never",
            "vxlan_mode": "Never",
            "nat_outgoing": True,
            "disabled": False,
            "disable_bgp_export": False,
            "namespaces": [],
            "blocks": 1,
            "allocated": 0,
            "capacity": 65536,
        }
    },
}


def wl(**kw):
    return {
        "l3.calico.workloads": {
            "workloads": [{"name": "w1", "ip": "172.17.0.5", **kw}],
            "netns_prefix": "l3tday2-mx-",
            "state_file": "{{ work }}/workloads.json",
        }
    }


def wl_opts(**kw):
    return {
        "l3.calico.workloads": {
            "workloads": [{"name": "w1", "ip": "172.17.0.5"}],
            "netns_prefix": "l3tday2-mx-",
            "state_file": "{{ work }}/workloads.json",
            **kw,
        }
    }


def fw(pools=None, workloads=None, **kw):
    return {
        "l3.calico.firewall": {
            "pools": pools or GOOD_IPAM["pools"],
            "workloads": workloads if workloads is not None else [],
            "state_file": "{{ work }}/firewall.json",
            **kw,
        }
    }


def tun(**kw):
    args = {"node": HOST, "nodes": GOOD_IPAM["nodes"], "pools": GOOD_IPAM["pools"], **kw}
    return {"l3.calico.tunnels": args}


def sysctl(values):
    return {"l3.calico.sysctls": {"values": values, "path": "{{ work }}/sysctl.d/60-l3-calico.conf"}}


def node(**kw):
    """l3.calico.node (the whole of role calico_node): a sysctl it could write is pending, so a late
    refusal (after the sysctls were applied) leaves a file behind."""
    args = {
        "packages": [],
        "node": HOST,
        "nodes": GOOD_IPAM["nodes"],
        "pools": GOOD_IPAM["pools"],
        "sysctls": {"net.ipv4.ip_forward": 1},
        "sysctl_file": "{{ work }}/sysctl.d/60-l3-calico.conf",
        "firewall_state_file": "{{ work }}/firewall.json",
        **kw,
    }
    return {"l3.calico.node": args}


def bgp(**variables):
    return {"ansible.builtin.include_role": {"name": "l3.calico.calico_bgp"}, "vars": {"calico_ipam_result": GOOD_IPAM, **variables}}


def policy(policies=None, namespaces=None):
    """l3.calico.policy_plan (the controller-side policy compiler, run once): the policy model is checked
    before anything is compiled; the message names the policy, the rule, the field and the value."""
    rule = {"action": "Allow", "protocol": "TCP", "destination": {"ports": [80]}}
    args = {
        "group": "calico_nodes",
        "ipam_result": GOOD_IPAM,
        "policies": policies if policies is not None else [{"name": "web", "namespace": "blue", "ingress": [rule]}],
        "namespaces": namespaces or {},
    }
    return {"l3.calico.policy_plan": args, "run_once": True}


def policy_program(sets6=(), rules=None, **options):
    """l3.calico.policy (the host side) with a dual-stack program: checked, and refused where it cannot be
    enforced, before anything changes (its state file stays inside the test's directory)."""
    program = {
        "version": 1,
        "sets": {},
        "chains": {"p_web_i": {"policy": "blue/web", "direction": "ingress", "rules": rules or [{"action": "allow"}]}},
        "endpoints": [{"interface": "cali0123456789a", "workload": "blue.web", "address": "10.64.0.1", "ingress": ["p_web_i"], "egress": []}],
    }
    if sets6 is not None:
        program["sets6"] = {}
        program["endpoints"][0]["address6"] = "fd00:64::1"
    return {"l3.calico.policy": {"program": program, "policy_state_file": "{{ work }}/policy.json", **options}}


def policy_rule(**rule):
    return policy([{"name": "web", "namespace": "blue", "selector": "app == 'web'", "ingress": [{"action": "Allow", **rule}]}])


def role(name, **variables):
    return {"ansible.builtin.include_role": {"name": name}, "vars": {"calico_ipam_result": GOOD_IPAM, **variables}}


# (id, component, task, strings the message must contain)
CASES = [
    ("workload-ip-garbage", "workloads", wl(ip="172.17.0.300"), ["ip", "172.17.0.300"]),
    ("workload-ip-ipv6", "workloads", wl(ip="fd00::1"), ["ip", "fd00::1", "IPv4"]),
    ("workload-ip-not-32", "workloads", wl(ip="172.17.0.0/24"), ["ip", "172.17.0.0/24", "/32"]),
    ("workload-no-ip", "workloads", wl(ip=None), ["default.w1", "no ip"]),
    ("workload-name-not-dns", "workloads", wl(name="Web_1"), ["name", "Web_1"]),
    (
        "workload-duplicate-ip",
        "workloads",
        {
            "l3.calico.workloads": {
                "workloads": [{"name": "a", "ip": "172.17.0.5"}, {"name": "b", "ip": "172.17.0.5"}],
                "netns_prefix": "l3tday2-mx-",
                "state_file": "{{ work }}/workloads.json",
            }
        },
        ["workloads[1]", "172.17.0.5", "already used"],
    ),
    (
        "workload-duplicate-id",
        "workloads",
        {
            "l3.calico.workloads": {
                "workloads": [{"name": "a", "ip": "172.17.0.5"}, {"name": "a", "ip": "172.17.0.6"}],
                "netns_prefix": "l3tday2-mx-",
                "state_file": "{{ work }}/workloads.json",
            }
        },
        ["workloads[1]", "default.a", "listed twice"],
    ),
    # full matches: re.match("...$") accepted a trailing newline (blue\n leaked a namespace)
    ("workload-namespace-newline", "workloads", wl(namespace="blue\n"), ["namespace", "blue\\n"]),
    ("workload-mtu", "workloads", wl_opts(mtu=40), ["mtu", "40"]),
    ("workload-veth-prefix", "workloads", wl_opts(veth_prefix="calico"), ["veth_prefix", "calico"]),
    ("workload-rp-filter", "workloads", wl_opts(rp_filter=3), ["rp_filter", "3"]),
    ("workload-netns-prefix", "workloads", wl_opts(netns_prefix="bad/prefix"), ["netns_prefix", "bad/prefix"]),
    ("tunnels-unknown-node", "tunnels", tun(node="n9"), ["n9", "not in the IPAM result"]),
    ("tunnels-bad-mode", "tunnels", tun(pools={"p1": {**GOOD_IPAM["pools"]["p1"], "ipip_mode": "Sometimes"}}), ["p1", "ipip_mode", "Sometimes"]),
    ("tunnels-no-underlay", "tunnels", tun(underlay_interface="l3tday2nope"), ["underlay interface", "l3tday2nope"]),
    ("firewall-pool-cidr", "firewall", fw(pools={"p1": {**GOOD_IPAM["pools"]["p1"], "cidr": "172.17.0.0/33"}}), ["p1", "cidr", "172.17.0.0/33"]),
    ("firewall-workload-ip", "firewall", fw(workloads=[{"name": "w1", "ip": "172.17.0"}]), ["workloads[0]", "ip", "172.17.0"]),
    ("firewall-workload-no-id", "firewall", fw(workloads=[{"ip": "172.17.0.5"}]), ["workloads[0]", "id", "name"]),
    ("firewall-backend", "firewall", fw(backend="pf"), ["backend", "pf"]),
    ("firewall-node-address", "firewall", fw(node_addresses=["192.168.77.300"]), ["node_addresses[0]", "192.168.77.300"]),
    ("firewall-veth-prefix", "firewall", fw(veth_prefix="toolong"), ["veth_prefix", "toolong"]),
    (
        "firewall-workload-ipv6",
        "firewall",
        fw(workloads=[{"name": "w1", "ip": "172.17.0.5", "ipv6": "fd00::zz"}]),
        ["workloads[0]", "ipv6", "fd00::zz", "not an IPv6 address"],
    ),
    ("firewall-node-address-ipv6", "firewall", fw(node_addresses=["fd00:77::zz"]), ["node_addresses[0]", "fd00:77::zz", "IPv6"]),
    ("sysctl-bad-key", "sysctls", sysctl({"net..ipv4": 1}), ["net..ipv4"]),
    ("sysctl-unknown-key", "sysctls", sysctl({"net.ipv4.l3tday2_nope": 1}), ["net.ipv4.l3tday2_nope", "does not exist"]),
    ("sysctl-key-newline", "sysctls", sysctl({"net.ipv4.ip_forward\n": 1}), ["net.ipv4.ip_forward\\n"]),
    ("sysctl-empty-value", "sysctls", sysctl({"net.ipv4.ip_forward": ""}), ["net.ipv4.ip_forward", "empty"]),
    ("node-sysctl-bad-key", "node", node(sysctls={"net..ipv4": 1}), [HOST, "net..ipv4"]),
    ("node-firewall-workload-ip", "node", node(workloads=[{"name": "w1", "ip": "172.17.0"}]), [HOST, "workloads[0]", "ip", "172.17.0"]),
    ("node-firewall-veth-prefix", "node", node(veth_prefix="toolong"), [HOST, "veth_prefix", "toolong"]),
    ("bgp-peer-address", "calico_bgp role", bgp(calico_bgp_peers=[{"address": "192.168.77.300", "as": 65000}]), ["calico_bgp_peers[0]", "192.168.77.300"]),
    ("bgp-peer-as", "calico_bgp role", bgp(calico_bgp_peers=[{"address": "192.168.77.1", "as": 0}]), ["calico_bgp_peers[0].as", "0"]),
    ("bgp-peer-name", "calico_bgp role", bgp(calico_bgp_peers=[{"address": "192.168.77.1", "as": 65000, "name": "tor 1"}]), ["name", "tor 1"]),
    (
        "bgp-peer-twice",
        "calico_bgp role",
        bgp(calico_bgp_peers=[{"address": "192.168.77.1", "as": 65000}, {"address": "192.168.77.1", "as": 65001}]),
        ["calico_bgp_peers[1].address", "192.168.77.1", "already a peer"],
    ),
    ("bgp-router-id", "calico_bgp role", bgp(calico_bgp_router_id="1.2.3"), ["calico_bgp_router_id", "1.2.3"]),
    ("bgp-graceful-restart-time", "calico_bgp role", bgp(calico_bgp_graceful_restart_time=5000), ["calico_bgp_graceful_restart_time", "5000", "0..4095"]),
    ("bgp-password-quote", "calico_bgp role", bgp(calico_bgp_mesh_password=SECRET), ["calico_bgp_mesh_password"]),
    ("bgp-password-newline", "calico_bgp role", bgp(calico_bgp_mesh_password=SECRET_NL), ["calico_bgp_mesh_password"]),
    ("bgp-not-a-node", "calico_bgp role", bgp(calico_ipam_result={**GOOD_IPAM, "nodes": {}}), ["calico_ipam_result.nodes", "not a node"]),
    # dual stack: the IPAM result's IPv6 side is checked as strictly (IPIP is IPv4-only; a node's ipv6 of its family)
    (
        "bgp-ipv6-pool-ipip",
        "calico_bgp role",
        bgp(
            calico_ipam_result={
                **GOOD_IPAM,
                "pools_ipv6": {"v6": {**GOOD_IPAM["pools"]["p1"], "cidr": "fd00:77::/64", "block_size": 122, "ipip_mode": "Always"}},
            }
        ),
        ["pools_ipv6.v6.ipip_mode", "Always", "IPv4-only"],
    ),
    (
        "bgp-node-ipv6-wrong-family",
        "calico_bgp role",
        bgp(calico_ipam_result={**GOOD_IPAM, "nodes": {HOST: {**GOOD_IPAM["nodes"][HOST], "ipv6": "192.168.77.10"}}}),
        [f"nodes.{HOST}.ipv6", "192.168.77.10", "not an IPv6 address"],
    ),
    # IPv6 BGP (Calico's bird6): an external peer's IPv6 address is an IPv6 session, checked as strictly as an IPv4 one
    (
        "bgp-peer-ipv6-garbage",
        "calico_bgp role",
        bgp(calico_bgp_peers=[{"address": "fd00:77::zz", "as": 65000}]),
        ["calico_bgp_peers[0].address", "fd00:77::zz", "not an IPv6 address"],
    ),
    (
        "bgp-peer-ipv6-link-local",
        "calico_bgp role",
        bgp(calico_bgp_peers=[{"address": "fe80::1", "as": 65000}]),
        ["calico_bgp_peers[0].address", "fe80::1", "link-local"],
    ),
    (
        "bgp-peer-ipv4-mapped",
        "calico_bgp role",
        bgp(calico_bgp_peers=[{"address": "::ffff:192.168.77.1", "as": 65000}]),
        ["calico_bgp_peers[0].address", "::ffff:192.168.77.1", "IPv4-mapped", "192.168.77.1"],
    ),
    (
        "bgp-node-peer-ipv6-without-node-ipv6",
        "calico_bgp role",
        bgp(calico_bgp_node_peers=[{"address": "2001:db8::2", "as": 65000}]),
        ["calico_bgp_node_peers[0].address", "2001:db8::2", "no IPv6 address (calico_node_ipv6)"],
    ),
    (
        "bgp-peer-ipv6-twice",
        "calico_bgp role",
        bgp(
            calico_ipam_result={
                **GOOD_IPAM,
                "nodes": {HOST: {**GOOD_IPAM["nodes"][HOST], "ipv6": "fd00:77::10", "network_ipv6": "fd00:77::/64"}},
                "pools_ipv6": {"v6": {**GOOD_IPAM["pools"]["p1"], "cidr": "fd00:10::/48", "block_size": 122}},
            },
            calico_bgp_peers=[{"address": "2001:db8::1", "as": 65000}, {"address": "2001:db8:0::1", "as": 65001}],
        ),
        ["calico_bgp_peers[1].address", "2001:db8::1", "already a peer"],
    ),
    # a node name that is not a DNS-1123 subdomain never reaches bird.conf (it would be a protocol there)
    (
        "bgp-node-name",
        "calico_bgp role",
        bgp(
            calico_ipam_result={
                **GOOD_IPAM,
                "nodes": {**GOOD_IPAM["nodes"], "n2\n  protocol static evil { ipv4; }": {**GOOD_IPAM["nodes"][HOST], "ip": "192.168.77.11", "blocks": []}},
            }
        ),
        ["calico_ipam_result.nodes", "protocol static evil", "DNS-1123"],
    ),
    ("bgp-service-manager", "calico_bgp role (argument spec)", bgp(calico_bgp_service_manager="runit"), ["calico_bgp_service_manager", "runit"]),
    (
        "workloads-role-rp-filter",
        "calico_workloads role (argument spec)",
        role("l3.calico.calico_workloads", calico_workloads_rp_filter=7),
        ["calico_workloads_rp_filter", "7"],
    ),
    ("policy-unknown-action", "policy_plan", policy_rule(action="Accept"), ["policy blue/web", "ingress[0].action", "'Accept'", "unknown action"]),
    ("policy-unknown-protocol", "policy_plan", policy_rule(protocol="GRE"), ["policy blue/web", "ingress[0].protocol", "'GRE'", "unknown protocol"]),
    (
        "policy-ports-without-protocol",
        "policy_plan",
        policy_rule(destination={"ports": [80]}),
        ["policy blue/web", "ingress[0].destination.ports", "[80]", "TCP, UDP or SCTP"],
    ),
    (
        "policy-port-range-upside-down",
        "policy_plan",
        policy_rule(protocol="TCP", destination={"ports": ["90:80"]}),
        ["policy blue/web", "ingress[0].destination.ports[0]", "'90:80'", "upside down"],
    ),
    (
        "policy-bad-selector",
        "policy_plan",
        policy_rule(source={"selector": "app = 'web'"}),
        ["policy blue/web", "ingress[0].source.selector", "app = 'web'", "syntax error"],
    ),
    (
        "policy-icmp-with-tcp",
        "policy_plan",
        policy_rule(protocol="TCP", icmp={"type": 8}),
        ["policy blue/web", "ingress[0].icmp", "{'type': 8}", "protocol to ICMP"],
    ),
    (
        "policy-duplicate-name",
        "policy_plan",
        policy([{"name": "web", "namespace": "blue"}, {"name": "web", "namespace": "blue"}]),
        ["policy blue/web (calico_policies[1])", "name", "'web'", "same name in namespace blue"],
    ),
    (
        "policy-namespace-selector-namespaced",
        "policy_plan",
        policy([{"name": "web", "namespace": "blue", "namespace_selector": "team == 'a'"}]),
        ["policy blue/web", "namespace_selector", "team == 'a'", "only a global policy"],
    ),
    ("policy-unknown-key", "policy_plan", policy_rule(ports=[80]), ["policy blue/web", "ingress[0].ports", "unknown key"]),
    (
        "policy-namespace-label",
        "policy_plan",
        policy(namespaces={"blue": {"labels": {"team": "a b"}}}),
        ["calico_namespaces.blue.labels.team", "'a b'", "label value"],
    ),
    # dual stack (issue 17): Calico's validateRule family checks, and the host side's IPv6 limits
    (
        "policy-ipversion-vs-nets",
        "policy_plan",
        policy_rule(ipVersion=4, source={"nets": ["fd00::/8"]}),
        ["policy blue/web", "ingress[0].source.nets", "fd00::/8", "doesn't match CIDR version"],
    ),
    (
        "policy-nets-mixing-families",
        "policy_plan",
        policy_rule(source={"nets": ["10.0.0.0/8"]}, destination={"notNets": ["fd00::/8"]}),
        ["policy blue/web", "ingress[0].destination.not_nets", "fd00::/8", "both IPv4 and IPv6 CIDRs"],
    ),
    (
        "policy-icmpv6-ipversion-4",
        "policy_plan",
        policy_rule(protocol="ICMPv6", ipVersion=4),
        ["policy blue/web", "ingress[0].ip_version", "4", "ipversion to '6' with protocol icmpv6"],
    ),
    ("policy-ipversion-5", "policy_plan", policy_rule(ipVersion=5), ["policy blue/web", "ingress[0].ip_version", "5", "must be 4 or 6"]),
    (
        "policy-program-ipv6-without-sets6",
        "policy",
        policy_program(sets6=None, rules=[{"action": "allow", "ip_version": 6}]),
        ["policy program", "rules[0].ip_version", "without sets6"],
    ),
    (
        "policy-program-icmpv6-in-ipv4-rule",
        "policy",
        policy_program(rules=[{"action": "allow", "protocol": 58, "icmp": {"type": 128}, "ip_version": 4}]),
        ["policy program", "rules[0]", "ICMPv6 type/code need ip_version 6"],
    ),
    ("ipam-role-datastore", "calico_ipam role", role("l3.calico.calico_ipam", calico_ipam_datastore="redis"), ["calico_ipam_datastore", "redis"]),
    ("ipam-migrate-target", "ipam_migrate", {"l3.calico.ipam_migrate": {"to": "redis", "state_file": "{{ work }}/x.json"}}, ["to", "redis"]),
    (
        "ipam-migrate-empty-source",
        "ipam_migrate",
        {"l3.calico.ipam_migrate": {"to": "etcd", "state_file": "{{ work }}/none.json", "etcd_endpoints": ["http://127.0.0.1:1"]}},
        ["none.json"],
    ),
]


def playbook(work: Path) -> str:
    tasks = [{"name": "Start with no recorded case", "ansible.builtin.set_fact": {"mx": {}}}]
    for case_id, _component, task, _expect in CASES:
        tasks.append(
            {
                "name": f"case {case_id}",
                "block": [
                    {"name": f"{case_id}: try", **task},
                    {"name": f"{case_id}: accepted", "ansible.builtin.set_fact": {"mx": f"{{{{ mx | combine({{'{case_id}': 'ACCEPTED'}}) }}}}"}},
                ],
                "rescue": [
                    {
                        "name": f"{case_id}: refused",
                        "ansible.builtin.set_fact": {
                            "mx": f"{{{{ mx | combine({{'{case_id}': {{'msg': ansible_failed_result.msg | default(ansible_failed_result) | string, "
                            f"'host': inventory_hostname}}}}) }}}}"
                        },
                    }
                ],
            }
        )
    tasks.append(
        {"name": "Record the outcomes", "ansible.builtin.copy": {"content": "{{ mx | to_json }}", "dest": str(work / "outcomes.json"), "mode": "0644"}}
    )
    play = [{"name": "Bad-input matrix", "hosts": HOST, "gather_facts": False, "vars": {"work": str(work)}, "tasks": tasks}]
    return yaml.safe_dump(play, sort_keys=False, width=200)


def sh(*argv, check=True):
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=60).stdout


@pytest.fixture(scope="module")
def outcome():
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces)")
    work = Path(tempfile.mkdtemp(prefix="l3tday2-mx-"))
    sh("ip", "netns", "add", NS)
    try:
        sh("ip", "netns", "exec", NS, "ip", "link", "set", "lo", "up")
        python = work / "python"
        python.write_text(f'#!/bin/sh\nexec /usr/bin/nsenter --net=/run/netns/{NS} /usr/bin/python3 "$@"\n')
        python.chmod(0o755)
        (work / "hosts.yml").write_text(
            yaml.safe_dump(
                {
                    "all": {
                        "children": {
                            "calico_nodes": {
                                "hosts": {
                                    HOST: {
                                        "ansible_connection": "local",
                                        "ansible_python_interpreter": str(python),
                                        "calico_node_ip": "192.168.77.10/24",
                                        "calico_ipam_state_file": str(work / "ipam.json"),
                                        "calico_bgp_config_file": str(work / "bird" / "bird.conf"),
                                        "calico_bgp_secrets_file": str(work / "bird" / "bird-secrets.conf"),
                                        "calico_bgp_control_socket": str(work / "run" / "bird.ctl"),
                                        # Should a case be accepted, nothing may leave the test's directory and no BIRD may
                                        # start: every path is here and "bird" is /bin/false (bird.conf's validation fails).
                                        "calico_bgp_pid_file": str(work / "run" / "bird.pid"),
                                        "calico_bgp_supervisor_pid_file": str(work / "run" / "supervisor.pid"),
                                        "calico_bgp_supervisor": str(work / "calico-bird-service"),
                                        "calico_bgp_service_manager": "supervisor",
                                        "calico_bgp_bird": "/bin/false",
                                        "calico_workloads_state_file": str(work / "workloads.json"),
                                        "calico_workloads_netns_prefix": "l3tday2-mx-",
                                    }
                                }
                            }
                        }
                    }
                }
            )
        )
        (work / "matrix.yml").write_text(playbook(work))
        env = dict(
            os.environ,
            PATH=f"{ROOT / '.venv' / 'bin'}:{os.environ.get('PATH', '')}",
            ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
            ANSIBLE_HOME=str(work / ".ansible"),
            ANSIBLE_LOCAL_TEMP=str(work / ".tmp"),
            ANSIBLE_NOCOLOR="1",
        )
        proc = subprocess.run(
            ["ansible-playbook", "-i", str(work / "hosts.yml"), str(work / "matrix.yml")],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=900,
            check=False,
        )
        if proc.returncode != 0 or not (work / "outcomes.json").exists():
            Path(tempfile.gettempdir(), "l3tday2-mx-last.log").write_text(proc.stdout + proc.stderr)
            raise AssertionError(f"rc={proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}")
        after = {
            "links": json.loads(sh("ip", "-n", NS, "-json", "link")),
            "routes": json.loads(sh("ip", "-n", NS, "-json", "route") or "[]"),
            "netns": [n for n in sh("ip", "netns", "list").split() if n.startswith("l3tday2-mx-") and n != NS],
            "nft": sh("ip", "netns", "exec", NS, "nft", "list", "tables", check=False) if shutil.which("nft") else "",
            "files": sorted(
                os.path.relpath(os.path.join(d, f), work)
                for d, dirs, files in os.walk(work)
                for f in files + [x for x in dirs if x[0] != "."]
                if not os.path.relpath(os.path.join(d, f), work).startswith(".")
            ),
        }
        yield {"cases": json.loads((work / "outcomes.json").read_text()), "after": after, "stdout": proc.stdout}
    finally:
        for name in sh("ip", "netns", "list").split():
            if name.startswith("l3tday2-mx-") and name != NS:
                subprocess.run(["ip", "netns", "del", name], check=False, timeout=30)
        subprocess.run(["ip", "netns", "del", NS], check=False, timeout=30)
        shutil.rmtree(work, ignore_errors=True)


@pytest.mark.parametrize("case_id, component, expect", [(c[0], c[1], c[3]) for c in CASES], ids=[c[0] for c in CASES])
def test_refused_naming_field_and_value(outcome, case_id, component, expect):
    got = outcome["cases"][case_id]
    assert got != "ACCEPTED", f"{component}: {case_id} was accepted"
    assert got["host"] == HOST
    for text in expect:
        assert text in got["msg"], f"{component}: {case_id}: {text!r} not in {got['msg']!r}"
    assert f"fatal: [{HOST}]" in outcome["stdout"]


def test_nothing_changed_on_the_host(outcome):
    after = outcome["after"]
    assert [link["ifname"] for link in after["links"]] == ["lo"]
    assert after["routes"] == []
    assert after["netns"] == []
    assert "l3calico" not in after["nft"]
    written = [f for f in after["files"] if f not in {"python", "hosts.yml", "matrix.yml", "outcomes.json"}]
    assert written == [], written


def test_no_password_in_the_output(outcome):
    assert "Sup3r" not in outcome["stdout"]
    assert all("Sup3r" not in json.dumps(v) for v in outcome["cases"].values())


def test_at_least_thirty_cases_across_components():
    assert len(CASES) >= 30
    assert len({c[1].split(" (")[0] for c in CASES}) >= 8
