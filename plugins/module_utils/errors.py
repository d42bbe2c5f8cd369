# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""The one base class of every error the collection's module_utils raise.

A module catches it once, whatever part raised it::

    except L3CalicoError as exc:
        module.fail_json(msg=str(exc), **exc.details)

The message is meant for the user as it is (it names host, field and value where there are ones).
Subclasses keep the builtin base they had (``ValueError`` for bad input, ``OSError`` for a refusal
of the kernel, ...), so code that catches those still does.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any


class L3CalicoError(Exception):
    """A problem that stops a run; ``details`` (keyword arguments) go into the failed result as they are."""

    details: Mapping[str, Any] = MappingProxyType({})

    def __init__(self, *args, **details):
        super().__init__(*args)
        if details:
            self.details = details
