# SPDX-License-Identifier: MIT
"""Control the l3.calico lab: the l3lab package beside this file (l3lab/cli.py has the commands).

    labctl.py image | backend | up SPEC_JSON | down | status | restart HOST | relay HOST PORT | capture start|stop

Kept at this path for its callers (playbooks/lab/*.yml, verify.yml, the lab inventory's ProxyCommand,
the Makefile, the tests); runs with the system's /usr/bin/python3 and its standard library only.
Python puts this file's directory first on sys.path, so the package imports as ``l3lab``.
"""

import sys

from l3lab.cli import main

if __name__ == "__main__":
    sys.exit(main())
