# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""docs/architecture.md gives every module_utils file one line: the table and the directory agree."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_module_utils_file_has_one_line_in_the_architecture_table():
    text = (ROOT / "docs" / "architecture.md").read_text()
    rows = re.findall(r"^\| `([a-z_]+\.py)`(?: / `([a-z_]+\.py)`)? \| (.+) \|$", text, re.M)
    documented = [name for row in rows for name in row[:2] if name]
    files = sorted(p.name for p in (ROOT / "plugins" / "module_utils").glob("*.py") if p.name != "__init__.py")
    assert sorted(documented) == files
    assert len(documented) == len(set(documented)), "a file listed twice"
    assert all(row[2].strip() for row in rows)
