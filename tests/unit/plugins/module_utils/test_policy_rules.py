# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""policy_rules: the program checked strictly, rendered for both backends, and planned (none / elements / replace)."""

from __future__ import annotations

import copy
import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.l3.calico.plugins.module_utils import policy_rules as pr


def entity(**kw):
    return dict({"nets": [], "not_nets": [], "set": None, "not_set": None, "ports": [], "not_ports": []}, **kw)


def rule(action="allow", **kw):
    base = {
        "action": action,
        "protocol": None,
        "not_protocol": None,
        "icmp": None,
        "not_icmp": None,
        "source": entity(),
        "destination": entity(),
        "ref": "blue/web ingress[0]",
    }
    base.update(kw)
    return base


def program():
    return {
        "version": 1,
        "sets": {"s_web": ["10.64.0.1/32", "10.64.0.7/32"], "s_none": []},
        "chains": {
            "p_web_i": {
                "policy": "blue/web",
                "direction": "ingress",
                "rules": [
                    rule("log", protocol=6),
                    rule("allow", protocol=6, source=entity(set="s_web"), destination=entity(ports=[[80, 80], [8000, 8100]])),
                    rule("pass", protocol=1, icmp={"type": 8, "code": 0}),
                    rule("deny", protocol=17, source=entity(not_nets=["10.1.0.0/16"], not_set="s_none")),
                ],
            },
            "p_out_e": {"policy": "global/out", "direction": "egress", "rules": [rule("allow", not_protocol=17)]},
        },
        "endpoints": [
            {"interface": "cali0123456789a", "workload": "blue.web-1", "address": "10.64.0.1", "ingress": ["p_web_i"], "egress": ["p_out_e"]},
            {"interface": "cali0123456789b", "workload": "blue.free", "address": "10.64.0.2", "ingress": [], "egress": []},
        ],
    }


# --- the program, checked strictly -----------------------------------------------------------


def test_a_good_program_parses():
    parsed = pr.parse_program(program())
    assert parsed.sets["s_web"] == ("10.64.0.1/32", "10.64.0.7/32")
    assert parsed.chains["p_web_i"].rules[1].destination.ports == ((80, 80), (8000, 8100))
    assert [e.interface for e in parsed.endpoints] == ["cali0123456789a", "cali0123456789b"]


def _bad(mutate, *words):
    data = program()
    mutate(data)
    with pytest.raises(pr.PolicyRulesError) as caught:
        pr.parse_program(data)
    for word in words:
        assert word in str(caught.value), str(caught.value)


@pytest.mark.parametrize(
    "mutate, words",
    [
        (lambda d: d.update(extra=1), ["program", "unknown key(s) extra"]),
        (lambda d: d.update(version=2), ["program.version"]),
        (lambda d: d.update(version=True), ["program.version"]),
        (lambda d: d["sets"].update({"s_bad\n": []}), ["program.sets", "a set name"]),
        (lambda d: d["sets"].update({"Upper": []}), ["a set name", "'Upper'"]),
        (lambda d: d["sets"]["s_web"].append("10.64.0.9/24"), ["program.sets.s_web[2]", "canonical", "10.64.0.9/24"]),
        (lambda d: d["sets"]["s_web"].append("10.64.0.9"), ["program.sets.s_web[2]", "canonical"]),
        (lambda d: d["sets"]["s_web"].append("10.64.0.1/32"), ["program.sets.s_web", "twice"]),
        (lambda d: d["chains"]["p_web_i"]["rules"][0].update(colour="red"), ["program.chains.p_web_i.rules[0]", "unknown key(s) colour"]),
        (lambda d: d["chains"]["p_web_i"]["rules"][0].update(action="Allow"), ["rules[0].action", "'Allow'"]),
        (lambda d: d["chains"]["p_web_i"]["rules"][0].update(protocol=256), ["rules[0].protocol", "0..255"]),
        (lambda d: d["chains"]["p_web_i"]["rules"][1]["destination"].update(ports=[[80, 70000]]), ["destination.ports[0]", "0..65535"]),
        (lambda d: d["chains"]["p_web_i"]["rules"][1]["destination"].update(ports=[[90, 80]]), ["destination.ports[0]", "upside down", "[90, 80]"]),
        (lambda d: d["chains"]["p_web_i"]["rules"][1]["destination"].update(ports=[[True, 80]]), ["destination.ports[0]"]),
        (lambda d: d["chains"]["p_web_i"]["rules"][1].update(protocol=1), ["rules[1]", "ports need protocol"]),
        (lambda d: d["chains"]["p_web_i"]["rules"][2].update(protocol=6), ["rules[2]", "icmp/not_icmp need protocol 1"]),
        (lambda d: d["chains"]["p_web_i"]["rules"][2].update(icmp={"type": 8, "kode": 0}), ["rules[2].icmp", "unknown key(s) kode"]),
        (lambda d: d["chains"]["p_web_i"]["rules"][1]["source"].update(set="s_missing"), ["source.set", "names no set", "s_missing"]),
        (lambda d: d["chains"]["p_web_i"]["rules"][3]["source"].update(not_nets=["10.1.0.0/8"]), ["source.not_nets[0]", "canonical"]),
        (lambda d: d["chains"]["p_web_i"]["rules"][0].update(ref='x" drop'), ["rules[0].ref"]),
        (lambda d: d["chains"]["p_web_i"].update(direction="in"), ["p_web_i.direction", "'in'"]),
        (lambda d: d["chains"].update({"p_" + "x" * 30: {"policy": "a/b", "direction": "egress", "rules": []}}), ["a chain name"]),
        (lambda d: d["endpoints"][0].update(interface="cali0123456789ab"), ["endpoints[0].interface"]),
        (lambda d: d["endpoints"][0].update(interface="cali0\n"), ["endpoints[0].interface"]),
        (lambda d: d["endpoints"][0].update(address="10.64.0.01"), ["endpoints[0].address", "canonical"]),
        (lambda d: d["endpoints"][1].update(address="10.64.0.1"), ["endpoints[1]", "twice"]),
        (lambda d: d["endpoints"][0].update(ingress=["p_out_e"]), ["endpoints[0].ingress", "names no ingress chain", "p_out_e"]),
        (lambda d: d["endpoints"][0].update(ingress=["p_web_i", "p_web_i"]), ["endpoints[0].ingress", "twice"]),
        (lambda d: d["endpoints"][0].update(labels={}), ["endpoints[0]", "unknown key(s) labels"]),
    ],
)
def test_bad_programs_are_refused_naming_field_and_value(mutate, words):
    _bad(mutate, *words)


def test_members_inside_another_are_dropped_adjacent_ones_kept():
    assert pr._without_covered(["10.0.0.1/32", "10.0.0.0/24", "10.0.1.0/32", "10.0.1.1/32"]) == ("10.0.0.0/24", "10.0.1.0/32", "10.0.1.1/32")


# --- rendering ---------------------------------------------------------------------------------


def test_nft_rendering_is_felix_shaped():
    text = pr.render_nft(pr.parse_program(program()))
    assert text.startswith("table ip l3calico_policy {}\ndelete table ip l3calico_policy\n")  # one transaction
    assert "set s_web { type ipv4_addr; flags interval; elements = { 10.64.0.1/32, 10.64.0.7/32 } }" in text
    assert "set s_none { type ipv4_addr; flags interval; }" in text
    assert 'meta l4proto 6 ip saddr @s_web th dport { 80, 8000-8100 } meta mark set meta mark | 0x00010000 return comment "blue/web ingress[0]"' in text
    assert "meta l4proto 1 icmp type . icmp code { 8 . 0 } meta mark set meta mark | 0x00020000 return" in text
    assert "meta l4proto 17 ip saddr != 10.1.0.0/16 ip saddr != @s_none drop" in text
    assert 'meta l4proto 6 log prefix "l3calico p_web_i: "' in text
    to_chain = text.split("chain wl-to-cali0123456789a {")[1].split("}")[0].split("\n")
    assert [line.strip() for line in to_chain if line.strip()] == [
        "ct state established,related accept",
        "ct state invalid drop",
        "meta mark set meta mark & 0xfffcffff",
        "jump p_web_i",
        "meta mark & 0x00030000 != 0 return",
        'drop comment "blue.web-1 ingress: no policy allowed it"',
    ]
    free = text.split("chain wl-to-cali0123456789b {")[1].split("}")[0]
    assert "drop" not in free.replace("invalid drop", "")  # selected by no policy: no end-of-tier drop
    assert '"cali0123456789a" : jump wl-from-cali0123456789a' in text and "type filter hook input" in text
    assert "hook output" not in text  # the host reaches its own workloads


def test_iptables_rendering_uses_ipsets_multiport_and_return_marks():
    data = program()
    many = [[p, p] for p in range(1, 34, 2)]  # 17 ports: two multiport chunks
    data["chains"]["p_out_e"]["rules"] = [
        rule("allow", protocol=17, destination=entity(ports=many)),
        rule("deny", protocol=6, destination=entity(not_ports=many)),
    ]
    chains, sets = pr.ipt_program(pr.parse_program(data))
    web = chains["L3CP-p_web_i"]
    assert "-A L3CP-p_web_i -p 6 -m set --match-set l3cp-s_web src -m multiport --dports 80,8000:8100" in web[1]
    assert web[2] == "-A L3CP-p_web_i -m mark --mark 0x10000/0x10000 -j RETURN"
    assert web[3].startswith("-A L3CP-p_web_i -p 1 -m icmp --icmp-type 8/0 ") and web[4].endswith("--mark 0x20000/0x20000 -j RETURN")
    out = chains["L3CP-p_out_e"]
    assert len([line for line in out if "--dports" in line and "MARK --set" in line]) == 2  # any of: one rule per chunk
    deny = [line for line in out if line.endswith("-j DROP")]
    assert len(deny) == 1 and deny[0].count("! --dports") == 2  # none of: every chunk negated in one rule
    assert sets["l3cp-s_web"] == ("10.64.0.1/32", "10.64.0.7/32") and sets["l3cp-s_none"] == ()
    assert chains["L3CP-FORWARD"][0] == "-A L3CP-FORWARD -i cali0123456789a -j L3CP-FW-cali0123456789a"
    assert chains["L3CP-TW-cali0123456789a"][-1].endswith('no policy allowed it" -j DROP')
    assert chains["L3CP-TW-cali0123456789b"][-1].endswith("--ctstate INVALID -j DROP")  # selected by no policy: no end-of-tier drop


def test_long_names_fit_iptables_and_ipset():
    assert len(pr.ipt_chain("p" * 28)) == 28 and pr.ipt_chain("p" * 28) != pr.ipt_chain("p" * 27 + "q")
    assert len(pr.ipset_name("s" * 31)) == 31


# --- planning ----------------------------------------------------------------------------------


def _plan(data, have, known=True, recorded=None):
    return pr.plan_nft(pr.parse_program(data), have, known, recorded if recorded is not None else {}, pr.program_digests(data))


def _recorded(data):
    return _plan(data, None, False).record


def test_nft_plan_none_elements_replace():
    data = program()
    parsed = pr.parse_program(data)
    created = _plan(data, None, False)
    assert created.kind == "replace" and created.changes == ["nftables table ip l3calico_policy created"]
    recorded = _recorded(data)
    same = _plan(data, dict(parsed.sets), True, recorded)
    assert same.kind == "none" and not same.changed and same.nft_script == "" and same.diff() is None
    grown = program()
    grown["sets"]["s_web"].append("10.64.0.9/32")
    elements = _plan(grown, dict(parsed.sets), True, recorded)
    assert elements.kind == "elements"
    assert elements.nft_script == "add element ip l3calico_policy s_web { 10.64.0.9/32 }\n"
    assert elements.changes == ["set s_web: +10.64.0.9/32"]
    assert list(elements.diff()["after"].splitlines()) == ["  set s_web { 10.64.0.1/32, 10.64.0.7/32, 10.64.0.9/32 }"]
    assert elements.record["sets"]["s_web"][-1] == "10.64.0.9/32" and elements.record["rules_sha256"] == recorded["rules_sha256"]
    shrunk = _plan(data, dict(parsed.sets, s_web=("10.64.0.1/32", "10.64.0.7/32", "10.64.0.9/32")), True, recorded)
    assert shrunk.nft_script == "delete element ip l3calico_policy s_web { 10.64.0.9/32 }\n"
    unknown = _plan(data, dict(parsed.sets), False, recorded)  # rules not known to be ours: replaced
    assert unknown.kind == "replace"
    changed_rules = program()
    changed_rules["chains"]["p_out_e"]["rules"][0]["not_protocol"] = 6
    changed_rules["sets"]["s_web"].append("10.64.0.9/32")
    changed = _plan(changed_rules, dict(parsed.sets), True, recorded)
    assert changed.kind == "replace" and set(changed.after) == {"chain p_out_e", "set s_web"}
    assert "meta l4proto != 17" in changed.before["chain p_out_e"] and "meta l4proto != 6" in changed.after["chain p_out_e"]


def test_the_slow_path_compares_the_listing_with_the_one_recorded():
    data = program()
    parsed = pr.parse_program(data)
    recorded = dict(_recorded(data), structure="STRUCTURE")
    same = pr.plan(parsed, "nftables", pr.NftState("STRUCTURE", dict(parsed.sets)), None, recorded, pr.program_digests(data))
    assert same.kind == "none" and same.record["structure"] == "STRUCTURE"
    drifted = pr.plan(parsed, "nftables", pr.NftState("SOMETHING ELSE", dict(parsed.sets)), None, recorded, pr.program_digests(data))
    assert drifted.kind == "replace" and drifted.read_back and "structure" not in drifted.record


def test_iptables_plan_none_elements_replace_and_stale_objects():
    parsed = pr.parse_program(program())
    chains, sets = pr.ipt_program(parsed)
    first = pr.plan_iptables(parsed, None, {})
    assert first.kind == "replace" and "-I FORWARD 1 -j L3CP-FORWARD" in first.iptables_script
    assert "create l3cp-s_web hash:net family inet -exist" in first.ipset_script
    current = pr.IptState({k: list(v) for k, v in chains.items()}, {"FORWARD": 1, "INPUT": 1}, dict(sets))
    recorded = dict(first.record, listing=pr._ipt_listing(current))
    assert pr.plan_iptables(parsed, current, recorded).kind == "none"
    data = program()
    data["sets"]["s_web"].remove("10.64.0.7/32")
    fewer = pr.plan_iptables(pr.parse_program(data), current, recorded)
    assert fewer.kind == "elements" and fewer.ipset_script == "del l3cp-s_web 10.64.0.7/32\n" and fewer.iptables_script == ""
    stale = pr.IptState(dict(current.chains, **{"L3CP-old": ["-A L3CP-old -j DROP"]}), {"FORWARD": 2, "INPUT": 1}, dict(sets, **{"l3cp-old": ()}))
    redo = pr.plan_iptables(parsed, stale, recorded)
    assert redo.kind == "replace" and "-F L3CP-old\n-X L3CP-old" in redo.iptables_script
    assert redo.iptables_script.count("-D FORWARD -j L3CP-FORWARD") == 1 and "-I FORWARD" not in redo.iptables_script
    assert redo.ipset_after == "destroy l3cp-old\n"


def test_the_other_backends_objects_are_removed_and_removal_takes_everything():
    parsed = pr.parse_program(program())
    ipt = pr.IptState({"L3CP-FORWARD": ["-A L3CP-FORWARD -i x -j L3CP-FW-x"]}, {"FORWARD": 1, "INPUT": 0}, {"l3cp-s_web": ()})
    both = pr.plan(parsed, "nftables", None, ipt, {})
    assert "-D FORWARD -j L3CP-FORWARD" in both.iptables_script and both.ipset_after == "destroy l3cp-s_web\n"
    on_ipt = pr.plan(parsed, "iptables", pr.NftState("X", dict(parsed.sets)), None, {})
    assert on_ipt.nft_script == "delete table ip l3calico_policy\n"
    gone = pr.plan_removal(pr.NftState("X", dict(parsed.sets)), ipt, True)
    assert gone.kind == "remove" and gone.nft_script == "delete table ip l3calico_policy\n"
    assert "-F L3CP-FORWARD\n-X L3CP-FORWARD" in gone.iptables_script and "state file removed" in gone.changes
    assert not pr.plan_removal(None, None, False).changed


def test_nft_elements_read_back_in_every_shape():
    assert pr._nft_element("10.0.0.1") == ["10.0.0.1/32"]
    assert pr._nft_element({"prefix": {"addr": "10.0.0.0", "len": 24}}) == ["10.0.0.0/24"]
    assert pr._nft_element({"range": ["10.0.0.0", "10.0.0.2"]}) == ["10.0.0.0/31", "10.0.0.2/32"]
    assert pr._nft_element({"elem": {"val": "10.0.0.3", "comment": "x"}}) == ["10.0.0.3/32"]
    with pytest.raises(pr.PolicyRulesError):
        pr._nft_element(["weird"])


def test_converge_in_check_mode_runs_reads_only(tmp_path, monkeypatch):
    ran = []

    def runner(argv, stdin=None):
        ran.append(list(argv))
        if argv[:2] == ["nft", "-c"]:
            return pr.iproute.Result(0, "", "")
        return pr.iproute.Result(1, "", "No such file or directory")

    monkeypatch.setattr(pr.shutil, "which", lambda name: "/usr/sbin/" + name)
    monkeypatch.setattr(pr.firewall.shutil, "which", lambda name: "/usr/sbin/" + name)
    monkeypatch.setattr(pr.firewall, "_legacy_tables", lambda: [])
    the_plan = pr.converge(program(), check_mode=True, runner=runner, state_file=str(tmp_path / "s.json"))
    assert the_plan.kind == "replace" and the_plan.backend == "nftables"
    assert all(argv[:2] in (["nft", "-c"], ["nft", "-j"], ["ipset", "save"]) for argv in ran), ran
    assert not (tmp_path / "s.json").exists()


@settings(max_examples=60, deadline=None)
@given(
    have=st.sets(st.integers(0, 255), max_size=20),
    want=st.sets(st.integers(0, 255), max_size=20),
)
def test_element_changes_turn_the_current_members_into_the_wanted_ones(have, want):
    def as_cidrs(values):
        return tuple(sorted((f"10.9.0.{v}/32" for v in values), key=ipaddress.IPv4Network))

    data = program()
    data["sets"]["s_web"] = list(as_cidrs(want))
    parsed = pr.parse_program(data)
    before = dict(parsed.sets, s_web=as_cidrs(have))
    the_plan = _plan(data, before, True, _recorded(data))
    members = set(before["s_web"])
    for line in the_plan.nft_script.splitlines():
        verb, _el, _ip, _table, name, rest = line.split(" ", 5)
        assert name == "s_web"
        items = set(rest.strip("{} ").split(", "))
        members = members | items if verb == "add" else members - items
    assert members == set(as_cidrs(want))
    assert the_plan.kind == ("none" if have == want else "elements")
    assert len(copy.deepcopy(the_plan.changes)) == (0 if have == want else 1)


def test_an_unmoved_generation_plans_from_the_record_without_running_anything(tmp_path, monkeypatch):
    state_file = tmp_path / "policy.json"
    data = program()
    record = dict(_recorded(data), generation=[7, 1, "boot"])
    state_file.write_text(pr.json.dumps(record))

    def runner(argv, stdin=None):
        raise AssertionError(f"ran {argv}")

    monkeypatch.setattr(pr, "nft_generation", lambda: [7, 1, "boot"])
    same = pr.converge(data, runner=runner, state_file=str(state_file))
    assert same.kind == "none" and not same.changed
    grown = program()
    grown["sets"]["s_web"].append("10.64.0.9/32")
    checked = pr.converge(grown, runner=runner, state_file=str(state_file), check_mode=True)
    assert checked.kind == "elements" and checked.nft_script == "add element ip l3calico_policy s_web { 10.64.0.9/32 }\n"
    bad = program()
    bad["sets"]["s_web"].append("10.64.0.9/31")
    with pytest.raises(pr.PolicyRulesError):
        pr.converge(bad, runner=runner, state_file=str(state_file))
    monkeypatch.setattr(pr, "nft_generation", lambda: [8, 1, "boot"])  # something moved: read again
    with pytest.raises(AssertionError, match="ran"):
        pr.converge(data, runner=runner, state_file=str(state_file))


def test_the_generation_is_read_from_the_kernel_or_none():
    generation = pr.nft_generation()
    assert generation is None or (isinstance(generation[0], int) and isinstance(generation[1], int) and len(generation[2]) == 36)


def test_a_program_that_selects_nothing_here_needs_no_backend_and_removes_what_is_left(tmp_path, monkeypatch):
    data = program()
    for endpoint in data["endpoints"]:
        endpoint["ingress"], endpoint["egress"] = [], []
    ran = []

    def runner(argv, stdin=None):
        ran.append(list(argv))
        if argv[:2] == ["nft", "-j"]:
            return pr.iproute.Result(0, '{"nftables": [{"table": {"family": "ip", "name": "l3calico_policy", "handle": 3}}]}', "")
        return pr.iproute.Result(0, "", "")

    monkeypatch.setattr(pr.shutil, "which", lambda name: "/usr/sbin/" + name if name == "nft" else None)
    state_file = tmp_path / "policy.json"
    state_file.write_text("{}")
    gone = pr.converge(data, runner=runner, state_file=str(state_file))
    assert gone.kind == "remove" and gone.changed and ["nft", "-f", "-"] in ran and not state_file.exists()
    assert not any(argv[:2] == ["nft", "-c"] for argv in ran)  # no backend probe: none is needed
    monkeypatch.setattr(pr.shutil, "which", lambda name: None)
    quiet = pr.converge(data, runner=runner, state_file=str(state_file))
    assert quiet.kind == "none" and not quiet.changed


def test_long_names_stay_inside_the_kernels_comment_limits():
    data = program()
    long_name = "ns-" + "x" * 60 + "/" + "y" * 100
    data["chains"]["p_web_i"]["policy"] = long_name
    data["chains"]["p_web_i"]["rules"][0]["ref"] = long_name + " ingress[0]"
    data["endpoints"][0]["workload"] = "w" * 150
    text = pr.render_nft(pr.parse_program(data))
    comments = [part.split('"')[0] for part in text.split('comment "')[1:]]
    assert comments and max(len(c.encode()) for c in comments) <= 128
    chains, _sets = pr.ipt_program(pr.parse_program(data))
    assert max(len(part.split('"')[0]) for lines in chains.values() for line in lines for part in line.split('--comment "')[1:]) <= 255


# --- dual stack ----------------------------------------------------------------------------------


def program6():
    """program() in a dual-stack fleet: IPv6 set members, an endpoint with an IPv6 address, rules per family."""
    data = program()
    data["sets6"] = {"s_web": ["fd00:64::1/128", "fd00:64::/120"], "s_none": []}
    data["endpoints"][0]["address6"] = "fd00:64::1"
    rules = data["chains"]["p_web_i"]["rules"]
    rules[2]["ip_version"] = 4  # pass ICMP echo: IPv4
    rules[3]["ip_version"] = 4  # deny UDP from outside 10.1.0.0/16: IPv4 (its nets)
    rules.append(rule("allow", protocol=58, icmp={"type": 128, "code": None}, ip_version=6))
    rules.append(rule("deny", protocol=17, source=entity(not_nets=["2001:db8::/32"], set="s_web"), ip_version=6))
    return data


def test_a_dual_stack_program_parses_and_each_family_sees_its_own_rules():
    parsed = pr.parse_program(program6())
    assert parsed.dual and parsed.sets6["s_web"] == ("fd00:64::/120",)  # the /128 inside the /120 dropped
    assert parsed.endpoints[0].address6 == "fd00:64::1" and parsed.endpoints[1].address6 is None
    v4, v6 = parsed.family(4), parsed.family(6)
    assert [r.ip_version for r in v4.chains["p_web_i"].rules] == [None, None, 4, 4]
    assert [r.ip_version for r in v6.chains["p_web_i"].rules] == [None, None, 6, 6]
    assert v6.sets == {"s_web": parsed.sets6["s_web"]} and v4.sets == parsed.sets  # the sets each family's rules use
    assert pr.parse_program(program()).family(4) == pr.parse_program(program())  # IPv4 only: its own view
    assert pr.all_sets(parsed) == {"s_web": ("10.64.0.1/32", "10.64.0.7/32"), "s_none": (), "ip6:s_web": ("fd00:64::/120",)}


@pytest.mark.parametrize(
    "mutate, words",
    [
        (lambda d: d["sets6"].pop("s_none"), ["program.sets6", "names of sets"]),
        (lambda d: d["sets6"]["s_web"].append("fd00:64::1/64"), ["program.sets6.s_web[2]", "fd00:64::1/64", "canonical IPv6"]),
        (lambda d: d["sets6"]["s_web"].append("10.0.0.0/8"), ["program.sets6.s_web[2]", "10.0.0.0/8", "IPv6"]),
        (lambda d: d["sets6"]["s_web"].append("FD00::/8"), ["program.sets6.s_web[2]", "FD00::/8", "RFC 5952"]),
        (lambda d: d["endpoints"][0].update(address6="fd00:64:0::1"), ["endpoints[0].address6", "fd00:64:0::1", "canonical IPv6"]),
        (lambda d: d["endpoints"][1].update(address6="fd00:64::1"), ["program.endpoints[1]", "listed twice"]),
        (lambda d: d["endpoints"][1].update(address=None), ["endpoints[1].address", "null only for an IPv6-only endpoint"]),
        (lambda d: d["chains"]["p_web_i"]["rules"][4].update(ip_version=5), ["rules[4].ip_version", "4 or 6"]),
        (lambda d: d["chains"]["p_web_i"]["rules"][5]["source"].update(not_nets=["10.0.0.0/8"]), ["rules[5].source.not_nets[0]", "10.0.0.0/8", "IPv6"]),
        (lambda d: d["chains"]["p_web_i"]["rules"][3].pop("ip_version"), ["rules[3]", "needs its ip_version"]),
        (lambda d: d["chains"]["p_web_i"]["rules"][4].update(protocol=17), ["rules[4]", "protocol 1 (ICMP) or 58 (ICMPv6)"]),
        (lambda d: d["chains"]["p_web_i"]["rules"][4].update(ip_version=4), ["rules[4]", "ICMPv6 type/code need ip_version 6"]),
        (lambda d: d["chains"]["p_web_i"]["rules"][2].update(ip_version=6), ["rules[2]", "ICMP type/code in an IPv6 rule"]),
    ],
)
def test_bad_dual_stack_programs_are_refused(mutate, words):
    data = program6()
    mutate(data)
    with pytest.raises(pr.PolicyRulesError) as err:
        pr.parse_program(data)
    for word in words:
        assert word in str(err.value), (word, str(err.value))


def test_ipv6_bits_are_refused_in_an_ipv4_only_program():
    data = program()
    data["endpoints"][0]["address6"] = "fd00:64::1"
    with pytest.raises(pr.PolicyRulesError, match="unknown key"):
        pr.parse_program(data)
    data = program()
    data["chains"]["p_web_i"]["rules"][0]["ip_version"] = 6
    with pytest.raises(pr.PolicyRulesError, match="without sets6"):
        pr.parse_program(data)


def test_dual_stack_renders_an_ip6_table_beside_the_same_ip_table_in_one_transaction():
    text = pr.render_nft(pr.parse_program(program6()))
    ip_part, ip6_part = text.split("table ip6 l3calico_policy {}\n")
    # the ip table: what the IPv4-only program renders, less nothing, plus the IPv4-only rules it already had
    assert ip_part == pr.render_nft(pr.parse_program(program()))
    assert ip6_part.startswith("delete table ip6 l3calico_policy\ntable ip6 l3calico_policy {\n")
    assert "set s_web { type ipv6_addr; flags interval; elements = { fd00:64::/120 } }" in ip6_part
    assert "meta l4proto 6 ip6 saddr @s_web th dport { 80, 8000-8100 } meta mark set" in ip6_part
    assert "meta l4proto 58 icmpv6 type 128 meta mark set meta mark | 0x00010000 return" in ip6_part
    assert "meta l4proto 17 ip6 saddr != 2001:db8::/32 ip6 saddr @s_web drop" in ip6_part
    assert "icmp type" not in ip6_part.replace("icmpv6 type", "") and "10.1.0.0/16" not in ip6_part and "icmpv6" not in ip_part
    hook_input = ip6_part.split("chain hook-input {")[1]
    assert "icmpv6 type { 130, 131, 132, 133, 135, 136 } accept" in hook_input.split("iifname vmap")[0]  # Felix: NDP/MLD first
    assert "icmpv6 type { 130" not in ip6_part.split("chain hook-input {")[0]  # not in forward
    # an IPv4-only program after a dual-stack one: its ip6 table deleted in the same transaction
    assert pr.render_nft(pr.parse_program(program()), drop_ip6=True).endswith("}\ndelete table ip6 l3calico_policy\n")


def test_dual_stack_plans_none_elements_per_family_and_the_transitions():
    data = program6()
    parsed = pr.parse_program(data)
    created = pr.plan_nft(parsed, None, False, {}, pr.program_digests(data))
    assert created.kind == "replace" and created.changes == ["nftables table ip l3calico_policy created", "nftables table ip6 l3calico_policy created"]
    recorded = created.record
    assert recorded["ipv6"] is True and "ip6 chain p_web_i" in recorded["objects"] and "ip6:s_web" in recorded["sets"]
    have = pr.all_sets(parsed)
    same = pr.plan_nft(parsed, have, True, recorded, pr.program_digests(data))
    assert same.kind == "none" and not same.changed
    grown = program6()
    grown["sets6"]["s_web"].append("fd00:65::9/128")
    elements = pr.plan_nft(pr.parse_program(grown), have, True, recorded, pr.program_digests(grown))
    assert elements.kind == "elements" and elements.nft_script == "add element ip6 l3calico_policy s_web { fd00:65::9/128 }\n"
    assert elements.changes == ["set ip6:s_web: +fd00:65::9/128"]
    # IPv4 only again: the ip6 table goes in the same transaction as the ip table's rewrite
    v4 = program()
    back = pr.plan_nft(pr.parse_program(v4), have, True, recorded, pr.program_digests(v4), True)
    assert back.kind == "replace" and back.nft_script.endswith("delete table ip6 l3calico_policy\n")
    assert "nftables table ip6 l3calico_policy removed (no IPv6 in the program)" in back.changes and "ipv6" not in back.record
    # an IPv4-only program on an IPv4-only host: exactly the plan it always was (no ip6 word anywhere)
    plain = pr.plan_nft(pr.parse_program(v4), None, False, {}, pr.program_digests(v4))
    assert "ip6" not in plain.nft_script and "ipv6" not in plain.record and not any("ip6" in k for k in plain.record["objects"])


def test_nft_state_reads_both_tables_and_ipv6_elements(monkeypatch):
    tables = {
        "ip": '{"nftables": [{"metainfo": {}}, {"table": {"family": "ip", "name": "l3calico_policy", "handle": 1}},'
        ' {"set": {"family": "ip", "name": "s_web", "table": "l3calico_policy", "handle": 2, "elem": ["10.64.0.1"]}}]}',
        "ip6": '{"nftables": [{"table": {"family": "ip6", "name": "l3calico_policy", "handle": 1}},'
        ' {"set": {"family": "ip6", "name": "s_web", "table": "l3calico_policy", "handle": 2,'
        ' "elem": [{"prefix": {"addr": "fd00:64::", "len": 120}}, "fd00:65::1", {"range": ["fd00:66::", "fd00:66::1"]}]}}]}',
    }

    def runner(argv, stdin=None):
        family = argv[4]
        return pr.iproute.Result(0, tables[family], "") if family in tables else pr.iproute.Result(1, "", "No such file")

    monkeypatch.setattr(pr.shutil, "which", lambda name: "/usr/sbin/" + name)
    state = pr.read_nft(runner)
    assert state.ipv6 and state.ipv4
    assert state.members == {"s_web": ("10.64.0.1/32",), "ip6:s_web": ("fd00:64::/120", "fd00:65::1/128", "fd00:66::/127")}
    del tables["ip6"]
    only4 = pr.read_nft(runner)
    assert not only4.ipv6 and only4.members == {"s_web": ("10.64.0.1/32",)} and only4.structure.startswith("[")  # as it always was
    assert pr.plan_removal(state, None, False).nft_script == "delete table ip l3calico_policy\ndelete table ip6 l3calico_policy\n"
    assert pr.plan_removal(only4, None, False).nft_script == "delete table ip l3calico_policy\n"


def test_iptables_dual_stack_renders_ip6tables_chains_and_inet6_ipsets():
    parsed = pr.parse_program(program6())
    chains6, sets6 = pr.ipt_program(parsed.family(6), 6)
    chains4, sets4 = pr.ipt_program(parsed.family(4))
    assert (chains4, sets4) == pr.ipt_program(pr.parse_program(program()))  # the IPv4 side as without IPv6
    assert sets6 == {"l3cp-6s_web": ("fd00:64::/120",)}  # s_none: no IPv6 rule uses it
    web = chains6["L3CP-p_web_i"]
    assert any("-p 6 -m set --match-set l3cp-6s_web src -m multiport --dports 80,8000:8100" in line for line in web)
    assert any("-p 58 -m icmp6 --icmpv6-type 128 " in line for line in web)
    assert any("-p 17 ! -s 2001:db8::/32 -m set --match-set l3cp-6s_web src" in line for line in web)
    assert not any("icmp-type" in line or "10.1.0.0/16" in line for line in web)
    ndp = [f"-A L3CP-INPUT -p 58 -m icmp6 --icmpv6-type {t} -j RETURN" for t in (130, 131, 132, 133, 135, 136)]
    assert chains6["L3CP-INPUT"][:6] == ndp and chains4["L3CP-INPUT"][0].startswith("-A L3CP-INPUT -i ")
    the_plan = pr.plan_iptables(parsed, None, {}, "x")
    assert the_plan.kind == "replace" and "ip6tables-legacy chains L3CP-* created" in the_plan.changes
    assert (
        "create l3cp-6s_web hash:net family inet6 -exist" in the_plan.ipset_script and "create l3cp-s_web hash:net family inet -exist" in the_plan.ipset_script
    )
    assert the_plan.ip6tables_script.startswith("*filter\n") and "-I INPUT 1 -j L3CP-INPUT" in the_plan.ip6tables_script
    assert "ip6 chain L3CP-p_web_i" in the_plan.record["objects"]
    # IPv4 only again, with the ip6tables chains there: they go (jumps first), the inet6 sets after the rules
    have = pr.IptState(dict(chains4), {"FORWARD": 1, "INPUT": 1}, dict(sets4, **sets6), {}, dict(chains6), {"FORWARD": 1, "INPUT": 1})
    back = pr.plan_iptables(pr.parse_program(program()), have, the_plan.record, "y")
    assert "ip6tables-legacy chains L3CP-* removed (no IPv6 in the program)" in back.changes
    assert back.ip6tables_script.startswith("*filter\n-D FORWARD -j L3CP-FORWARD\n-D INPUT -j L3CP-INPUT\n-F ")
    assert back.ipset_after == "destroy l3cp-6s_web\n"
    plain = pr.plan_iptables(pr.parse_program(program()), None, {}, "z")
    assert plain.ip6tables_script == "" and not any("ip6" in k for k in plain.record["objects"])
    gone = pr.plan_removal(None, have, False)
    assert gone.ip6tables_script == back.ip6tables_script and "ip6tables-legacy chains removed: " + str(len(chains6)) in gone.changes


def test_a_dual_stack_program_on_iptables_without_ip6tables_is_refused_before_any_change(tmp_path, monkeypatch):
    ran = []

    def runner(argv, stdin=None):
        ran.append(list(argv))
        return pr.iproute.Result(1, "", "nope")

    monkeypatch.setattr(pr, "detect_backend", lambda runner, wanted: "iptables")
    monkeypatch.setattr(pr.shutil, "which", lambda name: None if name.startswith("ip6tables") else "/usr/sbin/" + name)
    with pytest.raises(pr.PolicyRulesError, match="needs ip6tables-legacy-restore"):
        pr.converge(program6(), runner=runner, backend="iptables", state_file=str(tmp_path / "s.json"))
    assert ran == [] and not (tmp_path / "s.json").exists()


def test_an_ipv6_only_endpoint_of_a_dual_stack_program_has_no_ipv4_address():
    data = program6()
    data["endpoints"][1].update(address=None, address6="fd00:64::2")
    parsed = pr.parse_program(data)
    assert [e.address for e in parsed.endpoints] == ["10.64.0.1", None]
    assert '"cali0123456789b" : jump wl-from-cali0123456789b' in pr.render_nft(parsed).split("table ip6 l3calico_policy {\n")[1]
    plain = program()
    plain["endpoints"][1]["address"] = None
    with pytest.raises(pr.PolicyRulesError, match="null only for an IPv6-only endpoint"):
        pr.parse_program(plain)
