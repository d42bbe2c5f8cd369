"""The file store: atomic 0600 writes, the lock, concurrent writers, a writer killed mid-run."""

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time

import pytest

from ansible_collections.l3.calico.plugins.module_utils.ipam_inventory import validate
from ansible_collections.l3.calico.plugins.module_utils.ipam_model import Block, Handle, StateError
from ansible_collections.l3.calico.plugins.module_utils.ipam_planner import Planner
from ansible_collections.l3.calico.plugins.module_utils.ipam_report import audit
from ansible_collections.l3.calico.plugins.module_utils.ipam_run import run
from ansible_collections.l3.calico.plugins.module_utils.ipam_store import FileStore, IpamState

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
POOLS = [{"name": "p1", "cidr": "10.10.0.0/16", "block_size": 28}]


def node(i, workloads):
    return {"name": f"n{i}", "ip": f"192.168.0.{i + 1}/24", "labels": {}, "workloads": [{"name": w} for w in workloads]}


def params(path, nodes, only=None):
    return {"pools": POOLS, "config": {}, "reservations": [], "nodes": nodes, "node": only, "state_file": str(path), "lock_timeout": 60.0}


def test_write_is_atomic_0600_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "s.json"
    result, _diff = run(params(path, [node(0, ["a", "b"])]), check_mode=False)
    assert result["changed"] is True
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    assert sorted(os.listdir(tmp_path)) == ["s.json", "s.json.lock"]
    json.loads(path.read_text())


def test_check_mode_writes_nothing_not_even_a_lock(tmp_path):
    path = tmp_path / "s.json"
    result, diff = run(params(path, [node(0, ["a"])]), check_mode=True)
    assert result["changed"] is True and "+ " in diff
    assert os.listdir(tmp_path) == []
    run(params(path, [node(0, ["a"])]), check_mode=False)
    before = path.read_bytes()
    result, diff = run(params(path, [node(0, ["a", "b"])]), check_mode=True)
    assert result["changed"] is True and "default.b" in diff
    assert path.read_bytes() == before


def test_second_run_reports_no_change_and_keeps_the_file(tmp_path):
    path = tmp_path / "s.json"
    run(params(path, [node(0, ["a"])]), check_mode=False)
    mtime = os.stat(path).st_mtime_ns
    result, diff = run(params(path, [node(0, ["a"])]), check_mode=False)
    assert result["changed"] is False and diff == ""
    assert os.stat(path).st_mtime_ns == mtime


def test_missing_directory_is_an_error(tmp_path):
    with pytest.raises(StateError, match="does not exist"):
        FileStore(str(tmp_path / "nope" / "s.json")).transact(lambda s: None, write=True)


def test_lock_is_exclusive_and_times_out(tmp_path):
    import fcntl

    path = tmp_path / "s.json"
    fd = os.open(str(path) + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with pytest.raises(StateError, match="still locked"):
            FileStore(str(path), lock_timeout=0.3).transact(lambda s: None, write=True)
    finally:
        os.close(fd)
    FileStore(str(path), lock_timeout=0.3).transact(lambda s: None, write=True)


def test_changes_are_tracked_per_object():
    state = IpamState()
    block = Block.new(0x0A000000, 26, "n1")
    state.blocks[block.cidr] = block
    state.touch_block(block.cidr)
    state.handles["h"] = Handle({block.cidr: 1})
    state.touch_handle("h")
    changes = state.changes()
    assert changes.blocks == {block.cidr} and changes.handles == {"h"} and not changes.affinities
    doc = state.to_document()
    again = IpamState.from_document(json.loads(json.dumps(doc)))
    assert not again.changed and again.to_document() == doc
    seq = again.blocks[block.cidr].sequence_number
    again.touch_block(block.cidr)
    again.touch_block(block.cidr)
    assert again.blocks[block.cidr].sequence_number == seq + 1  # one write, one increment


def _worker(path, index, rounds, queue):
    try:
        for r in range(rounds):
            names = [f"w{index}-{k}" for k in range((r + 1) * 3)]
            run(params(path, [node(index, names)], only=f"n{index}"), check_mode=False)
        queue.put((index, None))
    except Exception as exc:  # reported to the parent
        queue.put((index, repr(exc)))


def test_concurrent_writers_never_lose_or_duplicate_an_address(tmp_path):
    path = str(tmp_path / "s.json")
    workers, rounds = 6, 4
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(path, i, rounds, queue)) for i in range(workers)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _proc in procs]
    for p in procs:
        p.join(timeout=30)
    assert [err for _index, err in results if err] == []
    nodes = [node(i, [f"w{i}-{k}" for k in range(rounds * 3)]) for i in range(workers)]
    desired = validate(POOLS, {}, [], nodes)
    state = FileStore(path).load()
    planner = Planner(desired, state)
    assert audit(desired, state, None) == []
    addrs = []
    for block in state.blocks.values():
        addrs += [block.base + o for o, a in enumerate(block.allocations) if a is not None]
    assert len(addrs) == len(set(addrs)) == workers * rounds * 3
    planner.run()
    assert not state.changed  # every workload of every node is there: none lost


WRITER = r"""
import sys
sys.path.insert(0, {collections!r})
from ansible_collections.l3.calico.plugins.module_utils.ipam_run import run
nodes = [{{"name": f"n{{i}}", "ip": f"192.168.{{i // 250}}.{{i % 250 + 1}}/16", "labels": {{}},
          "workloads": [{{"name": f"w{{i}}-{{k}}"}} for k in range(40)]}} for i in range(300)]
params = {{"pools": [{{"name": "p1", "cidr": "10.0.0.0/8"}}], "config": {{}}, "reservations": [], "node": None,
          "state_file": {path!r}, "lock_timeout": 60.0}}
print("ready", flush=True)
turn = 0
while True:
    turn += 1
    params["nodes"] = nodes if turn % 2 else nodes[: len(nodes) // 2]
    run(params, check_mode=False)
"""


@pytest.mark.parametrize("delay", [0.8, 1.7, 2.9])
def test_writer_killed_mid_run_leaves_a_consistent_file(tmp_path, delay):
    path = str(tmp_path / "s.json")
    code = WRITER.format(collections=os.path.join(ROOT, ".collections"), path=path)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(delay)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    if os.path.exists(path):
        state = FileStore(path).load()  # a whole file, never a torn one
        everyone = [{"name": f"n{i}", "ip": f"192.168.{i // 250}.{i % 250 + 1}/16"} for i in range(300)]
        assert audit(validate([{"name": "p1", "cidr": "10.0.0.0/8"}], {}, [], everyone), state) == []
    # the next run completes, cleans the killed writer's temporary file, and leaves a clean state
    result, _diff = run(
        {
            "pools": [{"name": "p1", "cidr": "10.0.0.0/8"}],
            "config": {},
            "reservations": [],
            "node": None,
            "nodes": [node(0, ["a"])],
            "state_file": path,
            "lock_timeout": 60.0,
        },
        check_mode=False,
    )
    assert result["problems"] == []
    assert sorted(os.listdir(tmp_path)) == ["s.json", "s.json.lock"]


KILLED_BEFORE_RENAME = r"""
import os, sys
sys.path.insert(0, {collections!r})
from ansible_collections.l3.calico.plugins.module_utils.ipam_run import run
params = {{"pools": [{{"name": "p1", "cidr": "10.0.0.0/16"}}], "config": {{}}, "reservations": [], "node": None,
          "state_file": {path!r}, "lock_timeout": 60.0,
          "nodes": [{{"name": "n1", "ip": "192.168.0.1/24", "workloads": [{{"name": "a"}}, {{"name": "b"}}]}}]}}
os.replace = lambda *args: os.kill(os.getpid(), 9)  # die after the temporary file is written and synced
run(params, check_mode=False)
"""


def test_writer_killed_between_write_and_rename_keeps_the_previous_state(tmp_path):
    path = str(tmp_path / "s.json")
    run(
        {
            "pools": [{"name": "p1", "cidr": "10.0.0.0/16"}],
            "config": {},
            "reservations": [],
            "node": None,
            "nodes": [node(0, ["a"])],
            "state_file": path,
            "lock_timeout": 60.0,
        },
        check_mode=False,
    )
    before = open(path, "rb").read()
    code = KILLED_BEFORE_RENAME.format(collections=os.path.join(ROOT, ".collections"), path=path)
    proc = subprocess.run([sys.executable, "-c", code], timeout=60, check=False)
    assert proc.returncode == -signal.SIGKILL
    leftovers = [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]
    assert len(leftovers) == 1 and open(path, "rb").read() == before
    result, _diff = run(
        {
            "pools": [{"name": "p1", "cidr": "10.0.0.0/16"}],
            "config": {},
            "reservations": [],
            "node": None,
            "nodes": [node(0, ["a", "b"])],
            "state_file": path,
            "lock_timeout": 60.0,
        },
        check_mode=False,
    )
    assert result["changed"] is True and result["problems"] == []
    assert sorted(os.listdir(tmp_path)) == ["s.json", "s.json.lock"]


# -- dual stack (issue 17) ------------------------------------------------------------------------------

POOL6 = {"name": "p6", "cidr": "fd00:10::/112", "block_size": 122}


def test_an_ipv4_state_file_loads_unchanged_and_gains_ipv6_beside_it(tmp_path):
    """Migration-free: a state written before IPv6 existed is read as it is; adding an IPv6 pool keeps every
    IPv4 address and object, and only adds the IPv6 ones."""
    path = tmp_path / "s.json"
    nodes = [node(0, ["a", "b"]), node(1, ["c"])]
    run(params(path, nodes), check_mode=False)
    old = json.loads(path.read_text())
    dual = {**params(path, nodes), "pools": POOLS + [POOL6]}
    result, _diff = run(dual, check_mode=False)
    new = json.loads(path.read_text())
    assert new["format"] == old["format"] and new["version"] == old["version"] == 1
    assert [b for b in new["blocks"] if ":" not in b["cidr"]] == old["blocks"]  # IPv4 blocks untouched
    assert {h: v for h, v in new["handles"].items() if h in old["handles"]} == old["handles"]
    assert all(w["ip"] and w["ipv6"] for n in result["nodes"].values() for w in n["workloads"])
    six = [b for b in new["blocks"] if ":" in b["cidr"]]
    assert len(six) == 2 and all(b["cidr"].endswith("/122") for b in six)
    assert result["problems"] == []
    # and the IPv6 pool removed again: its addresses and blocks go, the IPv4 ones stay as they were
    run(params(path, nodes), check_mode=False)
    back = json.loads(path.read_text())
    assert [b for b in back["blocks"] if ":" in b["cidr"]] == [] and back["handles"] == old["handles"]


@pytest.mark.parametrize(
    "cidr, why",
    [
        ("fd00:10:0::/122", "canonical"),  # not RFC 5952's spelling (fd00:10::/122)
        ("FD00:10::/122", "canonical"),
        ("fd00:10::/112", "/116 to a /128"),
    ],
)
def test_an_ipv6_block_read_back_is_checked_as_strictly(tmp_path, cidr, why):
    path = tmp_path / "s.json"
    nodes = [node(0, ["a"])]
    run({**params(path, nodes), "pools": [POOL6]}, check_mode=False)
    doc = json.loads(path.read_text())
    (block,) = doc["blocks"]
    size = 1 << (128 - int(cidr.rsplit("/", 1)[1]))
    block.update(cidr=cidr, allocations=[None] * size, unallocated=list(range(size)), attributes=[])
    doc["affinities"], doc["handles"] = [], {}
    path.write_text(json.dumps(doc))
    before = path.read_bytes()
    with pytest.raises(StateError, match=why):
        run({**params(path, nodes), "pools": [POOL6]}, check_mode=False)
    assert path.read_bytes() == before
