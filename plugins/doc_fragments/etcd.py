# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""How IPAM modules reach etcd v3 (Calico's keys, compare-and-swap writes)."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  etcd_endpoints:
    description:
      - etcd client URLs (V(https://10.0.0.1:2379)) or V(host:port), tried in order until one answers.
      - Required whenever etcd is used.
    type: list
    elements: str
    default: []
  etcd_ca_cert:
    description: CA certificate (PEM) to verify the etcd servers; implies https for bare V(host:port) endpoints.
    type: path
  etcd_cert:
    description: Client certificate (PEM) for etcd's client certificate authentication; needs O(etcd_key).
    type: path
  etcd_key:
    description: Private key (PEM) of O(etcd_cert).
    type: path
  etcd_prefix:
    description:
      - Prefix put before every key, for instance V(/site-a) to keep several sites in one etcd.
      - Empty (the default) uses exactly Calico's keys.
    type: str
    default: ""
  etcd_timeout:
    description: Seconds to wait for one etcd request before trying the next endpoint.
    type: float
    default: 5.0
  etcd_retries:
    description:
      - Attempts (re-read and re-plan) when another writer changed what this run read.
      - After the last one the run fails with an error saying what was written; a plan that fits one
        transaction (up to 127 changed objects with etcd's default C(--max-txn-ops)) has then written nothing.
      - A larger plan first takes a writer lock (a key with a 10 s lease, C(/l3.calico/ipam-write-lock))
        that other runs wait for, so it cannot be left half-done by a conflict; if it dies midway every
        object written is consistent and the next run completes the plan.
    type: int
    default: 50
requirements:
  - etcd3gw (Python, on the machine running the module) whenever etcd is used
"""
