# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Every module's documented options, as ansible-doc shows them (doc fragments merged), are its argument spec.

The data-plane parts (tunnels, sysctls, firewall) each keep one argument spec in module_utils and one doc
fragment, used both by their own module and by ``l3.calico.node``: this is what keeps the two in step.
"""

from __future__ import annotations

import importlib
import json

import pytest
import yaml

from tests.support.ansible_run import ROOT, run_ansible

MODULES = sorted(path.stem for path in (ROOT / "plugins" / "modules").glob("*.py") if path.stem != "__init__")


class _Spec(Exception):
    def __init__(self, kwargs):
        super().__init__("argument spec captured")
        self.kwargs = kwargs


def _raise_spec(*args, **kwargs):
    raise _Spec(kwargs)


def argument_spec(name: str, monkeypatch) -> dict:
    """The argument_spec the module passes to AnsibleModule (its main() stops right there)."""
    module = importlib.import_module(f"ansible_collections.l3.calico.plugins.modules.{name}")
    monkeypatch.setattr(module, "AnsibleModule", _raise_spec)
    with pytest.raises(_Spec) as caught:
        module.main()
    return caught.value.kwargs["argument_spec"]


@pytest.fixture(scope="module")
def docs() -> dict:
    """ansible-doc's JSON of every module (one run)."""
    home = ROOT / ".cache" / "ansible"
    proc = run_ansible(
        *("ansible-doc", "-M", str(ROOT / "plugins" / "modules"), "--json", *(f"l3.calico.{name}" for name in MODULES)),
        state=home,
        timeout=120,
        ANSIBLE_HOME=str(home),
    )
    assert proc.returncode == 0, proc.stderr
    return {name.rsplit(".", 1)[1]: entry["doc"] for name, entry in json.loads(proc.stdout).items()}


def _norm(option: dict) -> dict:
    """The fields the docs and the spec must agree on, with Ansible's defaults filled in."""
    return {
        "type": option.get("type", "str"),
        "elements": option.get("elements"),
        "choices": list(option["choices"]) if option.get("choices") is not None else None,
        "default": option.get("default"),
        "required": bool(option.get("required", False)),
        "aliases": sorted(option.get("aliases") or []),
    }


@pytest.mark.parametrize("name", MODULES)
def test_documented_options_are_the_argument_spec(name, docs, monkeypatch):
    spec = argument_spec(name, monkeypatch)
    documented = docs[name].get("options") or {}
    assert sorted(documented) == sorted(spec), f"{name}: documented options differ from the argument spec"
    for option, settings in spec.items():
        assert _norm(documented[option]) == _norm(settings), f"{name}: option {option}"
        assert documented[option].get("description"), f"{name}: option {option} has no description"


@pytest.mark.parametrize("part", ["tunnels", "sysctls", "firewall"])
def test_each_part_has_one_fragment_and_one_spec_used_by_both_modules(part):
    """The part's doc fragment documents exactly its ARGUMENT_SPEC, and both its own module and the node
    module extend that fragment (module-level overrides, such as aliases, are checked above)."""
    fragment = importlib.import_module(f"ansible_collections.l3.calico.plugins.doc_fragments.{part}")
    spec = importlib.import_module(f"ansible_collections.l3.calico.plugins.module_utils.{part}").ARGUMENT_SPEC
    options = yaml.safe_load(fragment.ModuleDocFragment.DOCUMENTATION)["options"]
    assert sorted(options) == sorted(spec)
    for option, settings in spec.items():
        assert _norm(options[option]) == _norm(settings), option
    for name in (part, "node"):
        module = importlib.import_module(f"ansible_collections.l3.calico.plugins.modules.{name}")
        assert f"l3.calico.{part}" in yaml.safe_load(module.DOCUMENTATION)["extends_documentation_fragment"], name
