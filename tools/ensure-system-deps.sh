#!/usr/bin/env bash
# Install the system packages the tests need, only when some are missing.
# podman + runc run molecule's systemd containers (crun fails on this cgroup setup),
# debootstrap builds their image locally (no registry is reachable), graphviz renders
# tree PNGs, dpkg-dev builds the stand-in apt repository of the driver tests, gcc compiles the
# stand-in libcuda of the CUDA probe's tests.
set -euo pipefail

need=()
command -v podman >/dev/null || need+=(podman)
command -v runc >/dev/null || need+=(runc)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v dot >/dev/null || need+=(graphviz)
command -v dpkg-scanpackages >/dev/null || need+=(dpkg-dev)
command -v cc >/dev/null || need+=(gcc)
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  sudo=(sudo -n)
else
  echo "missing system packages: ${need[*]}" >&2
  echo "install them as root: apt-get update && apt-get install -y ${need[*]}" >&2
  exit 1
fi
echo "installing system packages: ${need[*]}"
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${need[@]}"
