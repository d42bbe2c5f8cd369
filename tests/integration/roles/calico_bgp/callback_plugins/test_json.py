# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Test-only stdout callback: the play's task results as one JSON document (core 2.19 has no json callback)."""

from __future__ import annotations

import json

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: test_json
type: stdout
short_description: Task results as JSON, for the integration tests
description: Prints one JSON document with every task's per-host result and the stats.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "test_json"

    def __init__(self):
        super().__init__()
        self.tasks = []

    def _task(self, task):
        if not self.tasks or self.tasks[-1]["task"]["uuid"] != task._uuid:
            self.tasks.append({"task": {"name": task.get_name(), "uuid": task._uuid}, "hosts": {}})
        return self.tasks[-1]

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._task(task)

    def v2_playbook_on_handler_task_start(self, task):
        self._task(task)

    def _record(self, result, **extra):
        entry = self._task(result._task)
        data = dict(result._result)
        data.update(extra)
        entry["hosts"][result._host.get_name()] = json.loads(json.dumps(data, default=str))

    def v2_runner_on_ok(self, result):
        self._record(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, failed=True)

    def v2_runner_on_skipped(self, result):
        self._record(result, skipped=True)

    def v2_runner_on_unreachable(self, result):
        self._record(result, failed=True, unreachable=True)

    def v2_playbook_on_stats(self, stats):
        hosts = sorted(stats.processed)
        summary = {h: stats.summarize(h) for h in hosts}
        self._display.display(json.dumps({"plays": [{"tasks": self.tasks}], "stats": summary}))
