#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Copy the IPAM state between the state file and etcd."""

from __future__ import annotations

DOCUMENTATION = r"""
module: ipam_migrate
short_description: Copy the Calico IPAM state between the state file and etcd v3
version_added: "1.0.0"
description:
  - Copies every IPAM object (IP pools, blocks, block affinities, handles, the IPAM config)
    from the state file to etcd, or from etcd to the state file, so that the destination holds
    exactly the source's objects. Nothing is lost on the way; a round trip gives back the same
    objects, sequence numbers included.
  - Only objects that differ are written, so a second run reports no change. Writes to etcd
    are compare-and-swap transactions under Calico's keys, like every other IPAM write.
  - Refuses, before writing anything, to copy an empty source, or to replace a destination
    that holds a different non-empty state unless O(overwrite=true).
extends_documentation_fragment:
  - l3.calico.etcd
options:
  to:
    description:
      - The destination. V(etcd) copies the state file into etcd; V(file) copies etcd into the state file.
    type: str
    choices: [etcd, file]
    required: true
  state_file:
    description: The IPAM state file (the one C(l3.calico.ipam) uses with the file datastore).
    type: path
    required: true
  overwrite:
    description: Replace a destination that already holds a different, non-empty IPAM state.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Counts what a copy would add, change and remove (RV(copied)); writes nothing.
  diff_mode:
    support: none
    description: No diff; RV(copied) counts the objects per kind.
  platform:
    support: full
    platforms: posix
    description: Any host that can read the state file and reach etcd.
author:
  - l3.calico maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Move the IPAM state into etcd
  l3.calico.ipam_migrate:
    to: etcd
    state_file: "{{ inventory_dir }}/calico_ipam.json"
    etcd_endpoints: [https://10.0.0.10:2379]
    etcd_ca_cert: /etc/calico/etcd-ca.pem
    etcd_cert: /etc/calico/etcd-cert.pem
    etcd_key: /etc/calico/etcd-key.pem

- name: Take a copy of etcd's IPAM state as a file
  l3.calico.ipam_migrate:
    to: file
    state_file: /var/backups/calico_ipam.json
    overwrite: true
    etcd_endpoints: [http://127.0.0.1:2379]
"""

RETURN = r"""
copied:
  description: Per kind of object, how many the source holds and how many were added, changed and removed.
  returned: success
  type: dict
  sample:
    blocks: {total: 3, added: 3, changed: 0, removed: 0}
    affinities: {total: 3, added: 3, changed: 0, removed: 0}
    handles: {total: 11, added: 11, changed: 0, removed: 0}
    pools: {total: 2, added: 2, changed: 0, removed: 0}
    config: {changed: true}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.l3.calico.plugins.module_utils.errors import L3CalicoError
from ansible_collections.l3.calico.plugins.module_utils.ipam_etcd import (
    ETCD_ARGUMENT_SPEC,
    store_from_params,
)
from ansible_collections.l3.calico.plugins.module_utils.ipam_migrate import copy_state


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            to=dict(type="str", choices=["etcd", "file"], required=True),
            state_file=dict(type="path", required=True),
            overwrite=dict(type="bool", default=False),
            **ETCD_ARGUMENT_SPEC,
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        file_store = store_from_params(params, "file", params["state_file"])
        etcd_store = store_from_params(params, "etcd")
        names = {"file": f"state file {params['state_file']}", "etcd": "etcd " + ",".join(params["etcd_endpoints"])}
        source, destination = (file_store, etcd_store) if params["to"] == "etcd" else (etcd_store, file_store)
        summary = copy_state(
            source,
            destination,
            write=not module.check_mode,
            overwrite=params["overwrite"],
            source_name=names["file" if params["to"] == "etcd" else "etcd"],
            destination_name=names[params["to"]],
        )
    except L3CalicoError as exc:
        module.fail_json(msg=str(exc))
    changed = summary.pop("changed")
    module.exit_json(changed=changed, copied=summary)


if __name__ == "__main__":
    main()
