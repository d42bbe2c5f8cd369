"""Helpers shared by the IPAM tests: build inventories and run the planner as the module does."""

from ansible_collections.l3.calico.plugins.module_utils.ipam_inventory import validate
from ansible_collections.l3.calico.plugins.module_utils.ipam_planner import Planner
from ansible_collections.l3.calico.plugins.module_utils.ipam_report import audit, build_result
from ansible_collections.l3.calico.plugins.module_utils.ipam_store import IpamState

POOL = {"name": "p1", "cidr": "10.10.0.0/16", "block_size": 26}


def make_nodes(spec, labels=None):
    """{"n1": ["w1", {"name": "w2", "ip": ...}], ...} -> the module's ``nodes`` list."""
    out = []
    for i, (name, workloads) in enumerate(spec.items()):
        out.append(
            {
                "name": name,
                "ip": f"192.168.{i // 200}.{i % 200 + 1}/24",
                "labels": (labels or {}).get(name, {}),
                "workloads": [w if isinstance(w, dict) else {"name": w} for w in workloads],
            }
        )
    return out


class Ipam:
    """An in-memory IPAM: state kept between plans, like the state file between runs."""

    def __init__(self, pools=None, config=None, reservations=None):
        self.pools = [POOL] if pools is None else pools
        self.config = config or {}
        self.reservations = reservations or []
        self.state = IpamState()

    def plan(self, spec, labels=None, only=None, nodes=None):
        desired = validate(self.pools, self.config, self.reservations, nodes or make_nodes(spec, labels), only)
        planner = Planner(desired, self.state)
        report = planner.run()
        result = build_result(desired, self.state, planner.block_pool)
        result["problems"] = audit(desired, self.state, planner.block_pool)
        result["report"] = report
        result["changed"] = self.state.changed
        self.state._changes = type(self.state._changes)()  # as if written and reloaded
        return result


def addresses(result):
    """{workload id: ip} over every node."""
    return {w["id"]: w["ip"] for n in result["nodes"].values() for w in n["workloads"]}
