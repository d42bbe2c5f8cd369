# SPDX-License-Identifier: MIT
"""python3 -m l3lab (from playbooks/lab/files): the same command line as labctl.py."""

import sys

from .cli import main

sys.exit(main())
