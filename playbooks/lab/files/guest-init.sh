#!/bin/sh
# SPDX-License-Identifier: MIT
# PID 1 of a lab guest (a User-mode Linux kernel whose root is the machine's
# filesystem through hostfs, read-only). Started by labctl.py, which passes
# these words of the kernel command line as environment variables:
#   l3lab_name  host name            l3lab_ip  address/prefix of the NIC
#   l3lab_gw    default gateway      l3lab_dir this guest's lab directory (writable)
#   l3lab_ip6, l3lab_gw6 (a dual-stack underlay only) the IPv6 address/prefix and gateway
#
# The guest gets a private writable root: an overlay whose lower layer is the
# machine's filesystem and whose upper layer is the guest's own disk (ubda, an
# ext4 image in $l3lab_dir made by labctl.py), so whatever the roles write
# (/etc/bird, /etc/sysctl.d, /var/lib/calico, ...) stays inside the guest and
# survives its restart, like a host's disk survives a reboot; /run, /tmp and
# the kernel state start fresh at every boot. Only $l3lab_dir is shared with
# the machine (hostfs), for the disk, the readiness flag and the console log.
set -eu
l3lab_name=${l3lab_name:?not on the kernel command line}
l3lab_ip=${l3lab_ip:?not on the kernel command line}
l3lab_gw=${l3lab_gw:?not on the kernel command line}
l3lab_dir=${l3lab_dir:?not on the kernel command line}
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
KVER=$(uname -r)
MODS=/usr/lib/uml/modules/$KVER
R=/tmp/l3lab-root

mount -t proc proc /proc
mount -t tmpfs -o size=1m,mode=0755 l3lab-scratch /tmp
insmod "$MODS/kernel/fs/overlayfs/overlay.ko"
# The disk (UML block device 98:0); a power cut before is replayed from ext4's journal.
mknod /tmp/ubda b 98 0
mkdir -p /tmp/disk $R
mount -t ext4 -o noatime /tmp/ubda /tmp/disk
mkdir -p /tmp/disk/upper /tmp/disk/work
mount -t overlay l3lab-root -o lowerdir=/,upperdir=/tmp/disk/upper,workdir=/tmp/disk/work $R

mount -t proc proc $R/proc
mount -t sysfs sysfs $R/sys
mount -t devtmpfs devtmpfs $R/dev
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts $R/dev/pts
mount -t tmpfs -o mode=1777 shm $R/dev/shm
mount -t tmpfs -o mode=0755 run $R/run
mount -t tmpfs -o mode=1777 tmp $R/tmp
# A home of its own: the machine's /root (shell rc files, caches) stays out of the guest.
mount -t tmpfs -o mode=0700 home $R/root
# Last, so no tmpfs hides it (the lab directory may live under /tmp).
mkdir -p $R"$l3lab_dir"
mount -t hostfs -o "$l3lab_dir" l3lab $R"$l3lab_dir"

# A host of its own: name, kernel modules where modprobe looks, and the
# iptables backend this kernel supports (its nftables lacks the ip/inet family).
hostname "$l3lab_name"
echo "$l3lab_name" >$R/etc/hostname
printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n' "$l3lab_name" >$R/etc/hosts
mkdir -p $R/usr/lib/modules
ln -sfn "$MODS" $R/usr/lib/modules/"$KVER"
for t in iptables ip6tables; do
  chroot $R update-alternatives --quiet --set $t /usr/sbin/$t-legacy >/dev/null 2>&1 || true
done

# One NIC on the underlay subnet, a default route via the router. A dual-stack
# underlay needs IPv6, a module in this kernel (loaded before the NIC comes up).
if [ -n "${l3lab_ip6:-}" ]; then
  insmod "$MODS/kernel/lib/crc-ccitt.ko"
  insmod "$MODS/kernel/net/ipv6/ipv6.ko"
fi
ip link set lo up
ip link set vec0 up
ip addr add "$l3lab_ip" dev vec0
ip route add default via "$l3lab_gw"
if [ -n "${l3lab_ip6:-}" ]; then
  # No DAD: the address is usable at once (the lab's addresses are unique by construction).
  ip -6 addr add "$l3lab_ip6" dev vec0 nodad
  ip -6 route add default via "${l3lab_gw6:?l3lab_ip6 without l3lab_gw6}" dev vec0
fi
# Reach the gateway once before sshd starts: the first SSH handshakes are
# much slower when ARP is still unresolved.
i=0
until ping -c 1 -W 1 -q "$l3lab_gw" >/dev/null 2>&1 || [ $i -ge 20 ]; do i=$((i + 1)); done

mkdir -p $R/run/sshd
chmod 0755 $R/run/sshd
chroot $R /usr/sbin/sshd -f "$l3lab_dir/sshd_config" -E "$l3lab_dir/sshd.log"
echo "up $(cat /proc/uptime)" >$R"$l3lab_dir/ready"

# Stay PID 1 and reap orphans (BIRD and sshd sessions daemonise).
cd $R
exec chroot $R /usr/bin/python3 -c '
import os, time
while True:
    try:
        os.waitpid(-1, 0)
    except ChildProcessError:
        time.sleep(1)
'
