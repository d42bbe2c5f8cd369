# SPDX-License-Identifier: MIT
"""Control the l3.calico lab: QEMU virtual machines (or User-mode Linux guests) running Debian 12
behind a router namespace. The command line is cli.py (run through ../labctl.py).

Modules: common (names, directories, processes), topology (the spec's plan), image (the guests'
root image), backends (QEMU or UML, chosen by probe), qemu, uml, guests (start, readiness, stop),
network (the router namespace, the guests' ports), lab (up, down, status, restart), relay (the
SSH ProxyCommand), capture (tcpdump on the router, read back with tcpdump -r), cli.

Topology: one network namespace `l3lab-router` holds a bridge per underlay subnet (with the
subnet's first address as gateway) and forwards between them; every guest's NIC is a tap device
`l3lab-p<N>` in that namespace, a port of its subnet's bridge. The guests are QEMU virtual
machines (QEMU runs inside the router's namespace, so it opens its tap there) booting Debian 12's
own kernel (linux-image-cloud-amd64, with the real ipip, vxlan and nftables) and systemd from a
root image built once from Debian's packages (`image`). Nothing is configured in the machine's
own network namespace, and a guest sees none of the machine's files.

Each guest has a disk of its own (`<lab>/<host>/disk.qcow2`, a copy-on-write overlay of the
image): what a guest writes survives a `restart`, like a host's disk survives a reboot; its
memory, processes and kernel state do not. Its identity (name, address, gateway, SSH host key,
the lab's key) comes through QEMU's fw_cfg device and is applied at every boot by
`l3lab-guest.service` (image/l3lab-guest).

CPU: QEMU's TCG emulator by default, which runs everywhere and does not depend on the host's CPU
features; KVM only where a probe boot under KVM reaches the initramfs (`accel`), or as forced
by L3LAB_ACCEL=tcg|kvm.
"""
