"""Stand-in for the get-pip.py that ansible-test downloads to put pip into its sanity virtualenvs.

ansible-test creates each sanity test's virtualenv without pip, then runs a bootstrap script fetched
from ci-files.testing.ansible.com. That host is not reachable from every machine that reaches PyPI.
tests/sanity/run.sh saves this file where ansible-test caches that script
(~/.ansible/test/cache/get_pip_<version>.py); it does the same job with what is at hand: the pip
wheel bundled with this Python's ensurepip installs the requested pip from PyPI.

ansible-test calls it the way it calls get-pip.py: pip install options and packages, plus
get-pip's own --no-setuptools and --no-wheel.
"""

from __future__ import annotations

import glob
import os
import sys


def main(argv: list[str]) -> int:
    import ensurepip  # pylint: disable=import-outside-toplevel

    wheels = sorted(glob.glob(os.path.join(os.path.dirname(ensurepip.__file__), "_bundled", "pip-*.whl")))
    if not wheels:
        sys.stderr.write(f"get_pip: no bundled pip wheel in {os.path.dirname(ensurepip.__file__)}/_bundled\n")
        return 1
    args = [arg for arg in argv if arg not in ("--no-setuptools", "--no-wheel")]
    if "--no-setuptools" not in argv:
        args.append("setuptools")
    if "--no-wheel" not in argv:
        args.append("wheel")
    sys.path.insert(0, wheels[-1])
    from pip._internal.cli.main import main as pip_main  # pylint: disable=import-outside-toplevel,import-error

    return pip_main(["install", "--upgrade", "--force-reinstall", *args])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
