# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Callback l3.calico.gc_freeze: the controller's objects frozen before every fork, so no worker's garbage
collection walks them; unfrozen and collected once per task.

ansible-core forks a worker for every task and host. The worker inherits the controller's whole heap (the
inventory, every host's variables, the IPAM result, the results and task fields kept for the running task),
and CPython's cyclic collector, whenever a worker runs a full collection, walks every one of those objects
and writes to each (copying the memory pages it touches): a cost per host that grows with the fleet. This
is what the ``gc`` documentation advises for a process that forks without exec: ``gc.freeze()`` just before
the fork. Frozen objects are never collected, so at the start of each task (in the controller, before that
task's workers fork) the callback unfreezes them and collects once; a task's own garbage waits for the next.
"""

from __future__ import annotations

DOCUMENTATION = r"""
name: gc_freeze
type: aggregate
short_description: Keep the controller's objects out of every worker's garbage collections
description:
  - ansible-core forks a worker process for every task and host. The worker inherits the controller's whole
    heap - the inventory, every host's variables, the IPAM result, the results kept for the running task -
    and Python's garbage collector, when it runs a full collection in the worker, walks every one of those
    objects and copies the memory pages it writes to. That cost per host grows with the fleet.
  - This callback freezes the controller's objects (Python's C(gc.freeze)) right before each fork, so a
    worker's collections walk only what the worker allocates; at the start of each task it unfreezes them
    and runs one collection in the controller, so the controller's own garbage is still freed (a task's
    garbage at the start of the next).
  - It changes no result and prints nothing. What it saves grows with the fleet; C(benchmarks/fleet.py --gc)
    measures C(site.yml --check) without and with it (figures in the README).
  - Enable it in C(ansible.cfg) with C(callbacks_enabled = l3.calico.gc_freeze) (this project's ansible.cfg
    does) or the environment variable E(ANSIBLE_CALLBACKS_ENABLED).
version_added: "1.0.0"
author:
  - l3.calico maintainers (!UNKNOWN)
requirements:
  - enabled in C(callbacks_enabled)
"""

import gc
import os

from ansible.plugins.callback import CallbackBase

_HOOKED = []  # once per process: os.register_at_fork cannot be undone


def _hook_forks() -> None:
    if not _HOOKED:
        os.register_at_fork(before=gc.freeze)
        _HOOKED.append(True)


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "l3.calico.gc_freeze"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _hook_forks()

    @staticmethod
    def _collect() -> None:
        """What the forks froze since the last task, back in the collector's reach, and one collection."""
        gc.unfreeze()
        gc.collect()

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._collect()

    def v2_playbook_on_handler_task_start(self, task):
        self._collect()

    def v2_playbook_on_cleanup_task_start(self, task):
        self._collect()
