# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Filter arguments validated against the filter's DOCUMENTATION (ansible.utils style: one source of truth)."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache, partial

import yaml
from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

_SPEC_KEYS = ("type", "elements", "default", "required", "choices")


@cache
def _spec(documentation: str) -> tuple[dict, list]:
    options = yaml.safe_load(documentation)["options"]
    spec = {name: {k: v for k, v in opt.items() if k in _SPEC_KEYS} for name, opt in options.items()}
    return spec, list(options)


def validate(documentation: str, name: str, args: tuple, kwargs: dict) -> dict:
    """Map positional ``args`` (value first) onto the documented options and validate them."""
    spec, order = _spec(documentation)
    spec = {name: dict(opt) for name, opt in spec.items()}  # the validator may annotate its spec
    if len(args) > len(order):
        raise AnsibleFilterError(f"{name}: takes at most {len(order) - 1} positional argument(s), got {len(args) - 1}")
    data = dict(zip(order, args, strict=False))  # the options not given positionally are left out
    data.update(kwargs)
    result = ArgumentSpecValidator(spec).validate(plain(data))
    if result.error_messages:
        raise AnsibleFilterError(f"{name}: {'; '.join(result.error_messages)}")
    return result.validated_parameters


def plain(value):
    """``value`` with its mappings as dicts and its lists and tuples as lists, all the way down (the leaves as they
    are). ansible-core 2.19 hands a filter lazy containers, and the validator deep-copies what it checks: a lazy
    container's copy copies its templar, with every variable of the host - the whole fleet's IPAM result, once per
    host and call (measured: 0.5 s per host in audit.yml's workloads step at 30 hosts, growing with the fleet)."""
    if isinstance(value, Mapping):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value


def need_netaddr(name: str, *args, **kwargs):
    raise AnsibleFilterError(f"{name}: the Python library netaddr is required on the controller (pip install netaddr)")


def missing(name: str):
    return partial(need_netaddr, name)
