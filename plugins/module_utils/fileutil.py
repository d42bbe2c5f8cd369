# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Files replaced whole: the one atomic write of the collection.

Every file a module writes (bird.conf and its companions, the IPAM state file, the sysctl file,
the firewall and workload state records) goes through :func:`atomic_write`, so a reader, or a
crash at any point, sees either the old file or the new one, never a torn one.
"""

from __future__ import annotations

import json
import os
import tempfile

TEMPORARY_SUFFIX = ".tmp"


def temporary_prefix(path: str) -> str:
    """The names of the temporary files of ``path`` start with this: ``.<name>.`` (then random, then ``.tmp``)."""
    return "." + os.path.basename(path) + "."


def atomic_write(path: str, content: str | bytes, mode: int = 0o644, uid: int = -1, gid: int = -1, make_parents: bool = False) -> None:
    """Replace ``path`` by ``content`` (a str is written as UTF-8).

    A temporary file in the same directory gets its owner (``uid``/``gid``; -1 keeps the process's)
    and ``mode`` before any content, is written and fsynced, renamed over ``path`` (``os.replace``),
    then the directory is fsynced so the rename itself survives a power loss. On any failure the
    temporary file is removed and ``path`` is untouched. ``make_parents``: missing parent
    directories are created first (the system's defaults).
    """
    directory = os.path.dirname(path) or "."
    if make_parents:
        os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=temporary_prefix(path), suffix=TEMPORARY_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchown(handle.fileno(), uid, gid)
            os.fchmod(handle.fileno(), mode)
            handle.write(content.encode("utf-8") if isinstance(content, str) else content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_directory(directory)


def fsync_directory(directory: str) -> None:
    """Make the entries of ``directory`` (a rename into it) durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_stale_temporaries(path: str) -> None:
    """Remove the temporary files of ``path`` that a killed writer left behind.

    Only for a caller that holds the lock every writer of ``path`` takes (so none of them is live).
    """
    directory = os.path.dirname(path) or "."
    prefix = temporary_prefix(path)
    for name in os.listdir(directory):
        if name.startswith(prefix) and name.endswith(TEMPORARY_SUFFIX):
            try:
                os.unlink(os.path.join(directory, name))
            except FileNotFoundError:
                pass


def read_record(path: str) -> dict:
    """A JSON object a module recorded after its last apply (what it wrote, to detect drift), or {} when
    there is none or it is unreadable: the caller then reads the kernel and re-applies, as without one."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}
