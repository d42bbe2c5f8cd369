# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""What a data-plane part's plan offers the modules, and the one way a module returns it.

Every part (``tunnels``, ``firewall``, ``sysctls``, ``policy_rules``) plans first and applies only outside check mode;
its plan says whether it changes anything (``changed``), what the module reports (``result()``) and
what ``--diff`` shows (``diff()``, None when nothing changes). ``l3.calico.node`` composes the parts'
results itself (``node.result``); each part's own module returns one plan with :func:`module_result`.
"""

from __future__ import annotations

from typing import Optional, Protocol


class PartPlan(Protocol):
    @property
    def changed(self) -> bool: ...

    def result(self) -> dict: ...

    def diff(self) -> Optional[dict]: ...


def module_result(the_plan: PartPlan, with_diff: bool) -> dict:
    """The module's return values: ``changed``, the part's result, and its diff when ``--diff`` asked and
    there is one."""
    out = dict(changed=the_plan.changed, **the_plan.result())
    diff = the_plan.diff() if with_diff else None
    if diff is not None:
        out["diff"] = diff
    return out
