#!/usr/bin/env bash
# Build the systemd container image the molecule scenarios run in, unless it already exists
# with the same package list. No registry is reachable, so the image comes from debootstrap.
# The image is Debian bookworm (Python 3.11 like the controller); the scenarios provide the
# Ubuntu-only and GPU-only pieces as named stand-ins.
set -euo pipefail

IMAGE=${NODE_IMAGE:-localhost/ddp-cluster-node:bookworm}
# python3-apt for ansible's apt module, python3-venv for the training venv, the rest for
# systemd as PID 1 and the roles' real commands (update-initramfs, modprobe, ip, ps).
PACKAGES=systemd,systemd-sysv,dbus,sudo,python3,python3-apt,python3-venv,ca-certificates,make,procps,iproute2,kmod,initramfs-tools,apt-utils,gpg
tag=$(printf '%s' "$PACKAGES" | sha256sum | cut -c1-12)

if podman image exists "$IMAGE" &&
   [ "$(podman image inspect --format '{{ index .Labels "ddp.packages" }}' "$IMAGE")" = "$tag" ]; then
  exit 0
fi

# Debian mirror: the one this machine's apt uses, unless DEBIAN_MIRROR says otherwise.
mirror=${DEBIAN_MIRROR:-$(grep -hoE '^(URIs:|deb) +[a-z]+://[^ ]+/debian/?( |$)' \
  /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null | head -n1 |
  grep -oE '[a-z]+://[^ ]+' || true)}
if [ -z "$mirror" ]; then
  echo "build-node-image: no Debian mirror found in /etc/apt; set DEBIAN_MIRROR" >&2
  exit 1
fi

rootfs=$(mktemp -d /var/tmp/ddp-node-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
echo "building $IMAGE with debootstrap from $mirror (about 2 minutes, once)"
debootstrap --variant=minbase --include="$PACKAGES" bookworm "$rootfs" "$mirror" >/dev/null
# Fresh machine-id at first boot; no getty on a console that does not exist.
: > "$rootfs/etc/machine-id"
rm -f "$rootfs/etc/systemd/system/getty.target.wants/"* 2>/dev/null || true
tar -C "$rootfs" -c . | podman import \
  --change 'CMD ["/sbin/init"]' --change "LABEL ddp.packages=$tag" - "$IMAGE" >/dev/null
echo "built $IMAGE"
