#!/usr/bin/env bash
# Fail early, with the numbers, when `make test` would run out of disk space half-way (a full
# disk otherwise surfaces 30 minutes in as "[Errno 28] No space left on device" inside a
# molecule scenario, with containers left behind).
#
# What make test adds to the disk at its peak (the torchrun scenario's install), measured with
# df every 30 s during a whole run from a fresh clone on a machine without the images: 31 GiB.
# Its parts (GiB, rounded up):
#   the repository's .venv (torch is a CUDA build)                              7    once
#   .cache/wheelhouse (the wheels the torchrun scenario copies to its node)    3    once
#   the cluster scenario's image: the node image plus the training venv        7    once
#   while the torchrun scenario installs: the wheelhouse archive (3) and the
#   run's other files (2) here, its node's unpacked wheels and venv (9)    14   every run
# Only what is not there yet counts. The repository and podman's storage may lie on different
# file systems; each is checked for its own share.
#
#   tools/check-disk.sh            (CHECK_DISK=0 skips it)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${CHECK_DISK:-1}" = 0 ] && exit 0

TORCH_IMAGE=${TORCH_IMAGE:-localhost/ddp-cluster-torch:bookworm}
store=$(podman info --format '{{ .Store.GraphRoot }}' 2>/dev/null || echo /var/lib/containers)
mkdir -p "$store"

repo_need=5   # the torchrun scenario's wheelhouse archive and the run's other files
store_need=10 # the torchrun scenario's node, plus 1 to spare
[ -x .venv/bin/python ] || repo_need=$((repo_need + 7))
[ -f .cache/wheelhouse/.inputs ] || repo_need=$((repo_need + 3))
podman image exists "$TORCH_IMAGE" 2>/dev/null || store_need=$((store_need + 7))

free_gib() { df --output=avail -BG "$1" | tail -n1 | tr -dc 0-9; }

check() { # DIR NEED WHAT
  local have
  have=$(free_gib "$1")
  if [ "$have" -lt "$2" ]; then
    echo "error: make test needs about $2 GiB free on the file system of $1 ($3), but" \
      "$have GiB are free. Free some space (old clones' .venv and .cache, unused podman" \
      "images: podman image prune) or set CHECK_DISK=0 to try anyway." >&2
    exit 1
  fi
}

if [ "$(stat -c %d .)" = "$(stat -c %d "$store")" ]; then
  check "$PWD" $((repo_need + store_need)) "the venv, the wheelhouse and podman's storage"
else
  check "$PWD" "$repo_need" "the venv and the wheelhouse"
  check "$store" "$store_need" "podman's storage: the images and the scenarios' containers"
fi
