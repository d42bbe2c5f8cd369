# SPDX-License-Identifier: MIT
"""Benchmark-only callback: the CPU seconds of every task of a run (benchmarks/fleet.py --tasks).

At each task start it reads the controller's CPU (its own and that of every process it has waited for:
the workers it forked, and through them the modules) and, when the benchmark's wrapper interpreter logs
the modules' CPU (``L3BENCH_MODULE_LOG``), the modules' total so far; a task's figures are the
differences up to the next task start. Ansible reaps a worker when it reuses its slot, so at each task
start the callback first waits for the workers still exiting (every result of the task before is in by
then; ``multiprocessing.active_children`` reaps the finished ones), else a task would carry the last
workers of the one before, and the modules they ran (whose CPU the wrapper has already logged). Written as
JSON lines to ``L3BENCH_TASK_LOG``: task name, CPU s, modules' CPU s, hosts it ran on.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import resource

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: task_cpu
type: aggregate
short_description: CPU seconds per task (benchmark only)
description: The controller's CPU and the modules' CPU of every task, as JSON lines to L3BENCH_TASK_LOG.
requirements: [enabled in callbacks_enabled]
"""


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _modules() -> float:
    path = os.environ.get("L3BENCH_MODULE_LOG")
    if not path:
        return 0.0
    with open(path, encoding="utf-8") as log:
        return sum(float(x) for x in log.read().split())


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "task_cpu"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self._task = None
        self._hosts = 0
        self._start = (_cpu(), _modules())
        self._out = open(os.environ["L3BENCH_TASK_LOG"], "a", encoding="utf-8")  # noqa: SIM115 - closed at the stats

    def _close_task(self, name: str | None) -> None:
        for worker in multiprocessing.active_children():
            worker.join(timeout=10)
        now = (_cpu(), _modules())
        entry = {"task": self._task or "(start)", "cpu": now[0] - self._start[0], "modules": now[1] - self._start[1], "hosts": self._hosts}
        self._out.write(json.dumps(entry) + "\n")
        self._task, self._hosts, self._start = name, 0, now

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._close_task(task.get_name())

    def v2_playbook_on_handler_task_start(self, task):
        self._close_task(task.get_name())

    def _count(self, result, *args, **kwargs):
        self._hosts += 1

    v2_runner_on_ok = v2_runner_on_failed = v2_runner_on_skipped = v2_runner_on_unreachable = _count

    def v2_playbook_on_stats(self, stats):
        self._close_task(None)
        self._out.close()
