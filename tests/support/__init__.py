# SPDX-License-Identifier: MIT
"""What the tests share, imported as ``tests.support.<module>`` (pytest's pythonpath holds the root).

- etcd_server: a private etcd on free ports, stopped by PID (the ``etcd`` fixtures of tests/conftest.py).
- ipam_worker: a CNI-like IPAM writer and the state audit; also run as a script, one writer a process.
- firewall_backends: nftables and iptables as test parameters, each skipped with what is missing.
- calico_wiring: a workload wired by hand as l3.calico wires one.
- bgp_fabric: network namespaces with real BIRD and the calico_bgp role (the BGP tests' fabrics).
- day2_fabric: the whole stack on a bgp_fabric (IPAM, workloads, BGP), for the day-2 and migration tests.
"""
