# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""What the network-policy namespace tests run inside a host namespace: policy_rules with a runner that records
every command (RUN_POLICY, JSON on stdin: [call, kwargs]), and ``nft monitor`` with nft's own PID."""

RUN_POLICY = r"""
import json, sys
from ansible_collections.l3.calico.plugins.module_utils import iproute, policy_rules
call, kwargs = json.load(sys.stdin)
ran = []
def runner(argv, stdin=None):
    ran.append([list(argv), stdin])
    return iproute.subprocess_runner(argv, stdin)
try:
    if call == "remove":
        plan = policy_rules.remove(runner=runner, **kwargs)
    else:
        plan = policy_rules.converge(runner=runner, **kwargs)
except Exception as exc:
    print(json.dumps({"ok": False, "type": type(exc).__name__, "error": str(exc)}))
else:
    print(json.dumps({"ok": True, "changed": plan.changed, "ran": ran, "diff": plan.diff(), **plan.result()}))
"""

NFT_MONITOR = "import os; os.execvp('nft', ['nft', 'monitor'])"  # the PID is nft's: stopped by it
