#!/bin/sh
# SPDX-License-Identifier: MIT
# mmdebstrap --customize-hook of the lab image (labctl.py image): $1 is the new root.
# Makes the Debian root a lab guest: identity from fw_cfg at boot, sshd keyed per guest,
# nothing that waits for a console or runs maintenance timers in a short-lived guest.
set -eu
root=$1
here=$(dirname "$0")
install -m 0755 "$here/l3lab-guest" "$root/usr/local/sbin/l3lab-guest"
install -m 0644 "$here/l3lab-guest.service" "$here/l3lab-ready.service" "$root/etc/systemd/system/"
mkdir -p "$root/etc/systemd/system/sysinit.target.wants" "$root/etc/systemd/system/multi-user.target.wants"
ln -sf /etc/systemd/system/l3lab-guest.service "$root/etc/systemd/system/sysinit.target.wants/"
ln -sf /etc/systemd/system/l3lab-ready.service "$root/etc/systemd/system/multi-user.target.wants/"
# No login prompts (nobody types at a guest's console) and no maintenance timers.
for unit in getty-static.service getty@.service serial-getty@.service console-getty.service \
    e2scrub_reap.service e2scrub_all.timer apt-daily.timer apt-daily-upgrade.timer \
    dpkg-db-backup.timer fstrim.timer systemd-tmpfiles-clean.timer; do
  ln -sf /dev/null "$root/etc/systemd/system/$unit"
done
printf '/dev/vda\t/\text4\tdefaults,noatime\t0\t1\n' >"$root/etc/fstab"
# Host keys are the guest's own (from fw_cfg): none may be shared through the image.
rm -f "$root"/etc/ssh/ssh_host_*
cat >"$root/etc/ssh/sshd_config.d/l3lab.conf" <<'CONF'
# l3.calico lab guest: the lab's key only, many multiplexed sessions (Ansible forks).
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
MaxSessions 64
MaxStartups 64
CONF
# Each guest gets its own machine id at its first boot.
: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
# Debian's initramfs is not used (labctl.py builds a small one): essential.sh's stand-in goes, and
# whatever initramfs a hook made anyway.
rm -f "$root/usr/local/sbin/update-initramfs" "$root"/boot/initrd.img-*
