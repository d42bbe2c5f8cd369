# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""plugin_utils/filter_args.py: a filter's arguments validated against its DOCUMENTATION, without deep-copying
the caller's containers (ansible-core 2.19 passes lazy ones, whose copy copies every variable of the host)."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.l3.calico.plugins.plugin_utils.filter_args import plain, validate

DOC = """
options:
  _input: {type: dict, required: true, description: the pools}
  underlay_mtu: {type: int, default: 1500, description: the MTU}
  names: {type: list, elements: str, default: [], description: some names}
"""


class NoCopyDict(dict):
    """Stands for a lazy container (ansible-core's subclass dict and list): reading it is fine, deep-copying it
    is what must not happen."""

    def __deepcopy__(self, memo):
        raise AssertionError("the caller's container was deep-copied")


class NoCopyList(list):
    def __deepcopy__(self, memo):
        raise AssertionError("the caller's container was deep-copied")


def test_arguments_are_validated_as_plain_copies():
    pools = NoCopyDict({"p": NoCopyDict({"cidr": "10.0.0.0/16", "tags": NoCopyList(["a"])})})
    params = validate(DOC, "l3.calico.example", (pools,), {"underlay_mtu": "1450", "names": NoCopyList(["x", "y"])})
    assert params == {"_input": {"p": {"cidr": "10.0.0.0/16", "tags": ["a"]}}, "underlay_mtu": 1450, "names": ["x", "y"]}
    assert type(params["_input"]["p"]) is dict and type(params["names"]) is list


def test_bad_arguments_still_fail_naming_the_filter():
    with pytest.raises(AnsibleFilterError, match=r"^l3.calico.example: .*underlay_mtu"):
        validate(DOC, "l3.calico.example", (NoCopyDict({}),), {"underlay_mtu": "big"})


def test_plain_keeps_the_leaves_and_turns_tuples_into_lists():
    leaf = object()
    assert plain({"a": (1, [leaf, "s"]), "b": NoCopyDict({"c": None})}) == {"a": [1, [leaf, "s"]], "b": {"c": None}}
    assert plain("text") == "text"
