#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# ansible-test sanity on this collection, with the local Python (no container).
#
#   tests/sanity/run.sh [ansible-test sanity options]    e.g. --test validate-modules
#
# ansible-test only runs from a directory .../ansible_collections/<namespace>/<name>, and the
# repository root is the collection itself: the files git knows (tracked, plus new ones not
# ignored) are copied to $TMPDIR/l3.calico-sanity-<hash of this checkout's path>/ansible_collections/l3/calico,
# afresh on every run, and ansible-test runs there (outside the git checkout, whose .gitignore
# would hide the copy from ansible-test). Its own virtualenvs (pylint, pycodestyle, ...) are pip-installed from
# PyPI once, into ~/.ansible/test/venv. Ignores: tests/sanity/ignore-<ansible-core major.minor>.txt.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
python="${PYTHON:-$root/.venv/bin/python}"
ansible_test="$(dirname "$python")/ansible-test"
dest="${TMPDIR:-/tmp}/l3.calico-sanity-$(printf %s "$root" | sha256sum | cut -c1-12)/ansible_collections/l3/calico"

# ansible-test puts pip into each virtualenv with a bootstrap script that it downloads from
# ci-files.testing.ansible.com; where that host is out of reach, get_pip.py does the same job
# with this Python's bundled pip and PyPI (see its docstring). A script already cached stays.
pip_version="$("$python" - <<'EOF'
import inspect, re
from ansible_test._internal import python_requirements
print(re.search(r"pip='([^']+)'", inspect.getsource(python_requirements.get_venv_packages)).group(1))
EOF
)"
bootstrap="$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
if [[ ! -e "$bootstrap" ]]; then
  mkdir -p "$(dirname "$bootstrap")"
  cp "$root/tests/sanity/get_pip.py" "$bootstrap"
fi

rm -rf "$dest"
mkdir -p "$dest"
git -C "$root" ls-files -z --cached --others --exclude-standard \
  | (cd "$root" && while IFS= read -r -d '' path; do
       [[ -e "$path" || -L "$path" ]] && printf '%s\0' "$path"
     done) \
  | tar -C "$root" --null -T - -cf - \
  | tar -C "$dest" -xf -

# The checkout's Ansible settings (the Makefile exports ANSIBLE_CONFIG, whose collections path is
# the checkout itself) stay out: ansible-test points Ansible at the copy.
while IFS= read -r name; do
  [[ "$name" == ANSIBLE_TEST_* ]] || unset "$name"
done < <(compgen -e | grep '^ANSIBLE_' || true)

cd "$dest"
version="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
exec "$ansible_test" sanity --python "$version" "$@"
