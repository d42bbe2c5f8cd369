# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
from __future__ import annotations

from ansible_collections.l3.calico.plugins.module_utils import firewall, sysctls
from ansible_collections.l3.calico.plugins.module_utils.plan import module_result


def test_changed_plan_returns_its_result_and_its_diff_only_when_asked():
    the_plan = firewall.Plan(backend="nftables", changes=["table ip l3calico replaced"], rendered="table ip l3calico {}\n")
    assert module_result(the_plan, with_diff=False) == {"changed": True, "backend": "nftables", "changes": ["table ip l3calico replaced"]}
    shown = module_result(the_plan, with_diff=True)
    assert shown["diff"] == {"before": "", "after": "table ip l3calico {}\n", "after_header": "nftables rules"}


def test_unchanged_plan_has_no_diff_even_when_asked():
    the_plan = sysctls.Plan(content="x = 1\n", before="x = 1\n", path="/etc/sysctl.d/60-l3-calico.conf")
    assert module_result(the_plan, with_diff=True) == {"changed": False, "changes": []}
