# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Callback l3.calico.gc_freeze: the controller's objects frozen before each fork (a worker's full collection
walks none of them), unfrozen and collected at a task start once the heap has grown by a quarter (nothing the
controller drops is kept for long, and a small play pays for no collection per task).

Each case runs in a Python of its own: the fork hook, once registered, stays for the process's life."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[4]

PRELUDE = """
import gc, json, os, weakref
from ansible_collections.l3.calico.plugins.callback.gc_freeze import CallbackModule

class Node:
    pass

def frozen_garbage(count):
    # count objects in reference cycles, alive when a worker forks (so frozen), garbage afterwards: only a
    # collection after gc.unfreeze() frees them. Their weak references are returned.
    nodes = [Node() for _ in range(count)]
    for node in nodes:
        node.me = node
    in_child(lambda: None)
    return [weakref.ref(node) for node in nodes]

def in_child(probe):
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        os.write(write, json.dumps(probe()).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        out = json.loads(pipe.read())
    os.waitpid(pid, 0)
    return out

heap = [{"host": f"n{i:05d}", "vars": [i, str(i)]} for i in range(20000)]  # the controller's inventory
"""


def run(script: str) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / ".collections"), *sys.path]))
    proc = subprocess.run([sys.executable, "-c", PRELUDE + script], capture_output=True, text=True, env=env, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_a_worker_collects_only_what_it_allocates():
    found = run(
        """
before = in_child(lambda: len(gc.get_objects()))
callback = CallbackModule()
after = in_child(lambda: len(gc.get_objects()))
print(json.dumps({"before": before, "after": after, "frozen_in_controller": gc.get_freeze_count()}))
"""
    )
    assert found["before"] > 40000  # without the callback a worker's full collection walks the whole heap
    assert found["after"] < 1000, found  # with it, only the worker's own objects
    assert found["frozen_in_controller"] > 40000


def test_a_task_start_collects_once_the_heap_has_grown_by_a_quarter():
    found = run(
        """
callback = CallbackModule()
callback.v2_playbook_on_task_start(None, False)  # the first collects: nothing is known of the heap yet
small = frozen_garbage(1)  # alive when a worker forked (so frozen), garbage since
gc.collect()
kept_while_frozen = small[0]() is not None
callback.v2_playbook_on_task_start(None, False)  # the heap grew by one cycle: no collection
kept_while_small = small[0]() is not None
large = frozen_garbage(2 * len(heap))  # a quarter more than the heap, and then some
callback.v2_playbook_on_task_start(None, False)
print(json.dumps({"kept_while_frozen": kept_while_frozen, "kept_while_small": kept_while_small,
                  "freed": all(ref() is None for ref in small + large), "frozen_after": gc.get_freeze_count()}))
"""
    )
    assert found == {"kept_while_frozen": True, "kept_while_small": True, "freed": True, "frozen_after": 0}


def test_handler_and_cleanup_tasks_collect_too():
    found = run(
        """
callback = CallbackModule()
CallbackModule()  # a second instance: still one fork hook
freed = []
for start in (callback.v2_playbook_on_handler_task_start, callback.v2_playbook_on_cleanup_task_start):
    cycles = frozen_garbage(2 * len(heap))
    start(None)
    freed.append(all(ref() is None for ref in cycles))
print(json.dumps({"freed": freed, "hooks": len(__import__(CallbackModule.__module__, fromlist=["_HOOKED"])._HOOKED)}))
"""
    )
    assert found == {"freed": [True, True], "hooks": 1}
