#!/bin/sh
# SPDX-License-Identifier: MIT
# mmdebstrap --essential-hook of the lab image (labctl.py image): $1 is the new root.
# The guests boot the small initramfs labctl.py builds, so Debian's is not made at all: a stand-in
# update-initramfs ahead of the real one on dpkg's PATH for the kernel's and initramfs-tools' scripts
# (customize.sh removes it).
set -eu
mkdir -p "$1/usr/local/sbin"
printf '#!/bin/sh\n# l3.calico lab image build: no initramfs (labctl.py builds its own)\nexit 0\n' >"$1/usr/local/sbin/update-initramfs"
chmod 0755 "$1/usr/local/sbin/update-initramfs"
