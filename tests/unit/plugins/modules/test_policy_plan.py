# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""l3.calico.policy_plan: the argument spec is the module's DOCUMENTATION, suboptions included (the action
plugin checks its arguments against it)."""

from __future__ import annotations

import yaml

from ansible_collections.l3.calico.plugins.modules import policy_plan

_KEYS = ("type", "elements", "default", "required", "choices")


def _spec(options: dict) -> dict:
    out = {}
    for name, option in options.items():
        entry = {k: option[k] for k in _KEYS if k in option}
        if "suboptions" in option:
            entry["options"] = _spec(option["suboptions"])
        out[name] = entry
    return out


def test_the_argument_spec_is_the_documentation_with_suboptions():
    assert policy_plan.ARGUMENT_SPEC == _spec(yaml.safe_load(policy_plan.DOCUMENTATION)["options"])


def test_the_action_plugin_checks_against_that_spec():
    from ansible_collections.l3.calico.plugins.action import policy_plan as action

    assert action._SPEC is policy_plan.ARGUMENT_SPEC
    assert action.ActionModule._VALID_ARGS == frozenset(policy_plan.ARGUMENT_SPEC)
