# SPDX-License-Identifier: MIT
"""The guests' root image: Debian 12 from Debian's packages, built once, cached by its inputs."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from . import common
from .common import IMAGE_CACHE, LabError, can_run_guests, locked, run

SUITE = "bookworm"  # Debian 12: the release the users' hosts run
IMAGE_SIZE = "2G"  # sparse; the image holds about 400 MB
INITRAMFS_MODULES = ("virtio_ring", "virtio", "virtio_pci_legacy_dev", "virtio_pci_modern_dev", "virtio_pci", "virtio_blk")


def image_packages() -> list[str]:
    lines = (common.IMAGE_FILES / "packages.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def image_key() -> str:
    """A digest of everything the image is made from: a change to any of it builds a new one."""
    digest = hashlib.sha256(f"{SUITE}\0{IMAGE_SIZE}\0{INITRAMFS_MODULES}\0".encode())
    for path in sorted(common.IMAGE_FILES.iterdir()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def apt_sources() -> str:
    """The machine's own Debian sources (its mirror and suites) for mmdebstrap, else Debian's."""
    for path in (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list")):
        if path.is_file() and re.search(rf"\b{SUITE}\b", path.read_text()):
            return str(path)
    return "http://deb.debian.org/debian"


def make_initramfs(root: Path, out: Path) -> None:
    """A small initramfs: busybox, the virtio drivers of the image's kernel, image/initramfs-init."""
    kernel = sorted((root / "lib" / "modules").iterdir())[-1]
    tree = out.parent / "initramfs"
    (tree / "bin").mkdir(parents=True)
    (tree / "modules").mkdir()
    shutil.copy2(root / "bin" / "busybox", tree / "bin" / "busybox")
    found = {p.name.removesuffix(".ko"): p for p in (kernel / "kernel").rglob("*.ko")}
    for module in INITRAMFS_MODULES:
        if module not in found:
            raise LabError(f"image: the kernel {kernel.name} has no module {module}")
        shutil.copy2(found[module], tree / "modules" / f"{module}.ko")
    shutil.copy2(common.IMAGE_FILES / "initramfs-init", tree / "init")
    (tree / "init").chmod(0o755)
    files = sorted(str(p.relative_to(tree)) for p in tree.rglob("*"))
    with open(out, "wb") as handle:
        listing = subprocess.Popen(["cpio", "-o", "-H", "newc", "--quiet"], cwd=tree, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        gzip = subprocess.Popen(["gzip", "-1"], stdin=listing.stdout, stdout=handle)
        listing.stdout.close()
        listing.stdin.write(("\n".join(["."] + files) + "\n").encode())
        listing.stdin.close()
        if listing.wait() != 0 or gzip.wait() != 0:
            raise LabError("image: cpio/gzip failed making the initramfs")
    shutil.rmtree(tree)


def build_image(dest: Path) -> dict:
    t0 = time.monotonic()
    work = dest.with_name(dest.name + f".build-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    root = work / "root"
    try:
        argv = [
            "mmdebstrap",
            "--quiet",
            "--variant=minbase",
            "--mode=root",
            "--format=directory",
            f"--include={','.join(image_packages())}",
            "--dpkgopt=path-exclude=/usr/share/man/*",
            "--dpkgopt=path-exclude=/usr/share/doc/*",
            "--dpkgopt=path-exclude=/usr/share/locale/*",
            "--dpkgopt=path-include=/usr/share/doc/*/copyright",
            f'--essential-hook={common.IMAGE_FILES / "essential.sh"} "$1"',
            f'--customize-hook={common.IMAGE_FILES / "customize.sh"} "$1"',
            SUITE,
            str(root),
            apt_sources(),
        ]
        run(*argv, timeout=900)
        kernels = sorted((root / "boot").glob("vmlinuz-*"))
        if not kernels:
            raise LabError("image: no kernel in /boot (linux-image-cloud-amd64 missing from packages.txt?)")
        shutil.copy2(kernels[-1], work / "vmlinuz")
        make_initramfs(root, work / "initrd.img")
        packages = run("dpkg-query", f"--admindir={root / 'var/lib/dpkg'}", "-W", "-f", "${Package} ${Version}\n").stdout
        run("mke2fs", "-q", "-t", "ext4", "-d", str(root), "-L", "l3lab-root", "-F", str(work / "root.img"), IMAGE_SIZE)
        shutil.rmtree(root)
        manifest = {
            "key": dest.name,
            "suite": SUITE,
            "kernel": kernels[-1].name.removeprefix("vmlinuz-"),
            "packages": dict(line.split(" ", 1) for line in packages.splitlines() if line),
            "build_seconds": round(time.monotonic() - t0, 1),
        }
        (work / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        os.replace(work, dest)
        return manifest
    finally:
        shutil.rmtree(work, ignore_errors=True)


def ensure_image() -> dict:
    """The current image (built now if its inputs changed); older images are removed."""
    dest = IMAGE_CACHE / image_key()
    with locked(IMAGE_CACHE / ".lock"):
        built = False
        if not (dest / "manifest.json").exists():
            can_run_guests(need_build=True)
            build_image(dest)
            built = True
            for old in IMAGE_CACHE.iterdir():
                if old.is_dir() and old != dest:
                    shutil.rmtree(old, ignore_errors=True)
        manifest = json.loads((dest / "manifest.json").read_text())
    return {
        "changed": built,
        "dir": str(dest),
        "kernel_file": str(dest / "vmlinuz"),
        "initrd": str(dest / "initrd.img"),
        "root": str(dest / "root.img"),
        **manifest,
    }
