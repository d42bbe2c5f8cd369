# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""errors.L3CalicoError: the one base of every module_utils exception, so a module catches it once."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

from ansible_collections.l3.calico.plugins import module_utils
from ansible_collections.l3.calico.plugins.module_utils import rtnl
from ansible_collections.l3.calico.plugins.module_utils.errors import L3CalicoError


def defined_exceptions():
    """Every exception class a module_utils file defines (found, not listed: a new one is checked too)."""
    found = {}
    for info in pkgutil.iter_modules(module_utils.__path__):
        mod = importlib.import_module(f"{module_utils.__name__}.{info.name}")
        for name, obj in vars(mod).items():
            if inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == mod.__name__:
                found[f"{info.name}.{name}"] = obj
    return found


EXCEPTIONS = defined_exceptions()


def test_the_scan_finds_the_exceptions_of_every_part():
    assert {
        "errors.L3CalicoError",
        "ipam_model.IpamError",
        "etcd_kv.EtcdConflictError",
        "bird_service.BirdServiceError",
        "iproute.CommandError",
        "rtnl.NetlinkError",
        "workloads.ApplyError",
        "bgp.BgpConfigError",
    } <= set(EXCEPTIONS)
    assert len(EXCEPTIONS) >= 19


@pytest.mark.parametrize("name", sorted(EXCEPTIONS))
def test_every_module_utils_exception_derives_from_the_one_base(name):
    assert issubclass(EXCEPTIONS[name], L3CalicoError)


@pytest.mark.parametrize(
    "name, builtin",
    [
        ("tunnels.TunnelError", ValueError),
        ("sysctls.SysctlError", ValueError),
        ("firewall.FirewallError", ValueError),
        ("workloads.WorkloadError", ValueError),
        ("ipam_result.IpamResultError", ValueError),
        ("calico_selector.SelectorError", ValueError),
        ("bgp.BgpConfigError", ValueError),
        ("iproute.CommandError", RuntimeError),
        ("rtnl.NetlinkError", OSError),
        ("workloads.ApplyError", OSError),
    ],
)
def test_each_keeps_the_builtin_base_it_had(name, builtin):
    assert issubclass(EXCEPTIONS[name], builtin)


def test_details_go_to_the_failed_result_and_default_to_none():
    exc = EXCEPTIONS["bird_service.BirdServiceError"]("BIRD refused", rc=1, stdout="", stderr="bad")
    assert (str(exc), dict(exc.details)) == ("BIRD refused", {"rc": 1, "stdout": "", "stderr": "bad"})
    plain = EXCEPTIONS["tunnels.TunnelError"]("tunnel_mtu=9: too small")
    assert (str(plain), dict(plain.details)) == ("tunnel_mtu=9: too small", {})
    with pytest.raises(TypeError):
        plain.details["x"] = 1  # the shared default is read-only


def test_an_oserror_subclass_keeps_errno_and_message():
    exc = rtnl.NetlinkError([])
    assert isinstance(exc, L3CalicoError) and isinstance(exc, OSError)
    assert exc.errno == 0 and exc.failures == []
