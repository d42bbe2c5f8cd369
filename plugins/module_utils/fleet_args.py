# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Module options that carry the whole fleet (every node's routing data), kept out of what a module returns.

A module returns its arguments (``invocation.module_args``), and Ansible keeps every host's result on the
controller: a fleet-wide option sent to every host would come back from every host, hosts x nodes of the
controller's time and memory (issue 15). The module returns it summarised. The roles do not template it
into the task either (Ansible keeps every host's templated task arguments on the controller too): the
modules' action plugins put it into the module's arguments (``plugin_utils/fleet_action.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def summary(value) -> str:
    """What a module returns instead of a fleet-wide mapping: its size."""
    return f"({len(value)} nodes: not returned)" if isinstance(value, Mapping) else "(not returned)"


def invocation(params: Mapping, *paths: Sequence[str]) -> dict:
    """``invocation`` for ``exit_json``/``fail_json``: ``params`` with the value at each of ``paths`` (a key,
    or keys into suboptions) replaced by :func:`summary`; the rest as given (Ansible still hides no_log values)."""
    args = dict(params)
    for path in paths:
        parent = args
        for key in path[:-1]:
            if not isinstance(parent.get(key), Mapping):
                parent = None
                break
            parent[key] = dict(parent[key])
            parent = parent[key]
        if parent is not None and parent.get(path[-1]) is not None:
            parent[path[-1]] = summary(parent[path[-1]])
    return {"module_args": args}
