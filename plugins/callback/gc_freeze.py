# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Callback l3.calico.gc_freeze: the controller's objects frozen before every fork, so no worker's garbage
collection walks them; unfrozen and collected once per task.

ansible-core forks a worker for every task and host. The worker inherits the controller's whole heap (the
inventory, every host's variables, the IPAM result, the results and task fields kept for the running task),
and CPython's cyclic collector, whenever a worker runs a full collection, walks every one of those objects
and writes to each (copying the memory pages it touches): a cost per host that grows with the fleet. This
is what the ``gc`` documentation advises for a process that forks without exec: ``gc.freeze()`` just before
the fork. Frozen objects are never collected, so at the start of a task (in the controller, before that
task's workers fork) the callback unfreezes them and runs a full collection - when the heap has grown by a
quarter since the last one, CPython's own rule for its oldest generation. A full collection at every task
start cost a 60-task play on 3 hosts 1.2-1.5 s of CPU (20-25 ms each), more than it saves there.
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
    worker's collections walk only what the worker allocates. At the start of a task, when the controller's
    heap has grown by a quarter since the last full collection (the rule CPython applies to its oldest
    generation), it unfreezes them and runs one, so the controller's own garbage is still freed.
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
GROWTH = 1.25  # a full collection once the heap holds a quarter more objects than the last one left


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
        self._survivors = 0  # objects the last full collection left (none yet: the first task start collects)

    def _collect(self) -> None:
        """What the forks froze back in the collector's reach, and a full collection, once the heap has grown."""
        if gc.get_freeze_count() + len(gc.get_objects()) <= GROWTH * self._survivors:
            return
        gc.unfreeze()
        gc.collect()
        self._survivors = len(gc.get_objects())

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._collect()

    def v2_playbook_on_handler_task_start(self, task):
        self._collect()

    def v2_playbook_on_cleanup_task_start(self, task):
        self._collect()
