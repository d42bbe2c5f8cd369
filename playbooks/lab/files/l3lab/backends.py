# SPDX-License-Identifier: MIT
"""Which guests this machine runs: User-mode Linux where its probe boot works, else QEMU; probes' verdicts kept per boot."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from . import common
from .common import CACHE, UML, LabError, can_run_guests, locked
from .guests import runtime_record
from .image import ensure_image
from .qemu import probe_kvm, start_qemu_guest
from .uml import probe_uml, start_uml_guest


def verdict(name: str, key: str, probe) -> dict:
    """A probe's verdict {"ok", "why"}, kept per machine boot (and key: the kernel probed)."""
    cache = CACHE / f"{name}.json"
    boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    with locked(CACHE / f".{name}.lock"):
        try:
            known = json.loads(cache.read_text())
        except (OSError, ValueError):
            known = {}
        if known.get("boot_id") != boot_id or known.get("key") != key:
            ok, why = probe()
            known = {"boot_id": boot_id, "key": key, "ok": ok, "why": why}
            cache.write_text(json.dumps(known) + "\n")
    return known


def choose_accel(image: dict) -> dict:
    """TCG, unless KVM is asked for or proven to work by a probe boot."""
    want = os.environ.get("L3LAB_ACCEL", "auto")
    if want not in ("auto", "tcg", "kvm"):
        raise LabError(f"L3LAB_ACCEL={want!r}: use auto, tcg or kvm")
    if want == "tcg":
        return {"accel": "tcg", "why": "L3LAB_ACCEL=tcg"}
    known = verdict("kvm", image["kernel"], lambda: probe_kvm(image))
    if want == "kvm" and not known["ok"]:
        raise LabError(f"L3LAB_ACCEL=kvm, but {known['why']}")
    return {"accel": "kvm" if known["ok"] else "tcg", "why": known["why"]}


def choose_backend() -> dict:
    """The guests: QEMU everywhere (Debian's kernel, systemd), or User-mode Linux as the fast
    path where its probe boot works (L3LAB_BACKEND=auto, the default), or as forced."""
    want = os.environ.get("L3LAB_BACKEND", "auto")
    if want not in ("auto", "qemu", "uml"):
        raise LabError(f"L3LAB_BACKEND={want!r}: use auto, qemu or uml")
    if want != "qemu":
        uml = verdict("uml", str(Path(UML).resolve()) if os.path.exists(UML) else "", probe_uml)
        if uml["ok"]:
            return {"backend": "uml", "accel": None, "why": uml["why"], "image": None}
        if want == "uml":
            raise LabError(f"L3LAB_BACKEND=uml, but {uml['why']}")
        why_not_uml = uml["why"]
    else:
        why_not_uml = "L3LAB_BACKEND=qemu"
    can_run_guests(need_build=False)
    image = ensure_image()
    accel = choose_accel(image)
    return {"backend": "qemu", "accel": accel["accel"], "why": f"{why_not_uml}; {accel['why']}", "image": image}


def start_guest(guest: dict, mem: str, runtime: dict) -> subprocess.Popen:
    gdir = common.LAB / guest["name"]
    gdir.mkdir(parents=True, exist_ok=True)
    for stale in ("pid", "ready", "console.log"):
        (gdir / stale).unlink(missing_ok=True)
    if runtime["backend"] == "uml":
        proc = start_uml_guest(guest, mem)
    else:
        proc = start_qemu_guest(guest, mem, runtime["image"], runtime["accel"])
    (gdir / "pid").write_text(f"{proc.pid}\n")
    (gdir / "guest.json").write_text(json.dumps(runtime_record(guest, runtime), sort_keys=True) + "\n")
    return proc
