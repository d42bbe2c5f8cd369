# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Host sysctls: persisted in one file of the project's under /etc/sysctl.d and applied now.

Applying goes straight to /proc/sys (no ``sysctl`` process); the file is written atomically and
only when its content differs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

from ansible_collections.l3.calico.plugins.module_utils.errors import L3CalicoError
from ansible_collections.l3.calico.plugins.module_utils.fileutil import atomic_write

KEY_RE = re.compile(r"[a-z0-9_]+(\.[A-Za-z0-9_\-]+)+")
HEADER = "# Managed by l3.calico (role calico_node); edits are overwritten.\n"
DEFAULT_FILE = "/etc/sysctl.d/60-l3-calico.conf"

# The options of this part, as modules l3.calico.sysctls and l3.calico.node take them
# (documented once, by doc fragment l3.calico.sysctls).
ARGUMENT_SPEC: dict[str, dict[str, Any]] = dict(
    sysctls=dict(type="dict"),
    sysctl_file=dict(type="path", default=DEFAULT_FILE),
)


class SysctlError(L3CalicoError, ValueError):
    pass


@dataclass(frozen=True)
class Options:
    """The part's options (:data:`ARGUMENT_SPEC`): the values wanted and the file that keeps them."""

    values: Mapping
    path: str = DEFAULT_FILE

    @classmethod
    def from_params(cls, params: Mapping) -> Options:
        return cls(values=params["sysctls"] or {}, path=params["sysctl_file"])


@dataclass
class Plan:
    content: Optional[str]  # None: the file is removed
    before: Optional[str]
    runtime: dict[str, str] = field(default_factory=dict)  # key -> value to write
    runtime_before: dict[str, Optional[str]] = field(default_factory=dict)
    path: str = ""  # the file planned

    @property
    def file_changed(self) -> bool:
        return self.before != self.content

    @property
    def changed(self) -> bool:
        return self.file_changed or bool(self.runtime)

    @property
    def changes(self) -> list[str]:
        out = [f"{k} {self.runtime_before[k]} -> {v}" for k, v in sorted(self.runtime.items())]
        if not self.file_changed:
            return out
        return out + (["file removed (the values applied now stay)"] if self.content is None else ["file rewritten"])

    def result(self) -> dict:
        """What the modules return for this part."""
        return {"changes": self.changes}

    def diff(self) -> Optional[dict]:
        """The file before and after (None when nothing changes)."""
        if not self.changed:
            return None
        if self.content is None:
            return {"before": self.before or "", "after": "", "before_header": self.path, "after_header": f"{self.path} (removed)"}
        return {"before": self.before or "", "after": self.content, "before_header": self.path, "after_header": self.path}


def normalise(values: Mapping) -> dict[str, str]:
    out = {}
    for key, value in values.items():
        if not isinstance(key, str) or not KEY_RE.fullmatch(key):
            raise SysctlError(f"sysctl name {key!r} is not a dotted sysctl key")
        if isinstance(value, bool):
            value = int(value)
        text = " ".join(str(value).split())
        if not text:
            raise SysctlError(f"sysctl {key}: empty value")
        out[key] = text
    return out


def _proc_path(proc_sys: str, key: str) -> str:
    return os.path.join(proc_sys, *key.split("."))


def _device_of(key: str) -> Optional[str]:
    """The interface of a per-device key (net.ipv4.conf.tunl0.rp_filter -> tunl0), else None."""
    parts = key.split(".")
    return parts[3] if len(parts) == 5 and parts[0] == "net" and parts[2] in ("conf", "neigh") else None


def plan(values: Mapping, path: str, proc_sys: str = "/proc/sys", creates: Sequence[str] = ()) -> Plan:
    """``creates``: devices another plan of the same run creates (their keys appear once it is applied)."""
    wanted = normalise(values)
    content = HEADER + "".join(f"{k} = {v}\n" for k, v in sorted(wanted.items()))
    try:
        with open(path, encoding="utf-8") as handle:
            before: Optional[str] = handle.read()
    except FileNotFoundError:
        before = None
    result = Plan(content=content, before=before, path=path)
    for key, value in sorted(wanted.items()):
        proc = _proc_path(proc_sys, key)
        try:
            with open(proc, encoding="ascii") as handle:
                current = " ".join(handle.read().split())
        except FileNotFoundError:
            if _device_of(key) not in creates:
                raise SysctlError(f"sysctl {key} does not exist on this kernel ({proc})") from None
            current = None
        if current != value:
            result.runtime[key] = value
            result.runtime_before[key] = current
    return result


def plan_removal(path: str) -> Plan:
    """Remove the project's file (``content`` None); the run-time values are left as they are.

    Only a file this module wrote (it starts with :data:`HEADER`) is removed; any other file at
    ``path`` is refused before anything changes. The values applied at run time are not restored:
    the previous values are unknown (nothing recorded them) and ``net.ipv4.ip_forward`` in
    particular may serve other things on the host; without the file they are not set again at the
    next boot.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            before: Optional[str] = handle.read()
    except FileNotFoundError:
        before = None
    if before is not None and not before.startswith(HEADER):
        raise SysctlError(f"{path} was not written by l3.calico (its first line is not {HEADER.strip()!r}): not removed")
    return Plan(content=None, before=before, path=path)


def apply(the_plan: Plan, path: str, proc_sys: str = "/proc/sys") -> None:
    if the_plan.file_changed and the_plan.content is None:
        os.unlink(path)
    elif the_plan.file_changed:
        atomic_write(path, the_plan.content, make_parents=True)
    for key, value in sorted(the_plan.runtime.items()):
        with open(_proc_path(proc_sys, key), "w", encoding="ascii") as handle:
            handle.write(value)
