#!/bin/bash
# Installs the stand-ins in a test container (molecule scenario nvidia_driver, prepare.yml).
# Usage: setup.sh GPUS AUTOINSTALL   (GPUS: number of GPUs, 0 for none; AUTOINSTALL: yes|no)
set -euo pipefail
src=$(cd "$(dirname "$0")" && pwd)
gpus=$1
autoinstall=$2
archive=/srv/nvidia-standin-archive

# The Ubuntu archive: dummy packages in a local repository, the only source apt sees. The
# lists are removed and their directory dated back, so that the role finds a stale cache and
# must refresh it itself.
bash "$src/build-archive.sh" "$src" "$archive"
cat >/etc/apt/sources.list <<SOURCES
# Stand-in for the Ubuntu archive, built by molecule/nvidia_driver/standins/build-archive.sh.
deb [trusted=yes] file:$archive ./
SOURCES
rm -f /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources
rm -rf /var/lib/apt/lists/* /var/lib/apt/periodic/update-success-stamp
touch -d '2 days ago' /var/lib/apt/lists

# The GPUs (none: a host without an NVIDIA device) and the release of ubuntu-drivers.
mkdir -p /etc/nvidia-standin
rm -f /etc/nvidia-standin/gpus
for i in $(seq 1 "$gpus"); do
  printf '0000:%02x:00.0 20b0 NVIDIA A100-SXM4-40GB\n' "$i" >>/etc/nvidia-standin/gpus
done
echo "autoinstall=$autoinstall" >/etc/nvidia-standin/ubuntu-drivers.conf

# lspci, and the kernel loading the nvidia module at boot.
install -m 0755 "$src/lspci" /usr/local/bin/lspci
install -D -m 0755 "$src/load-nvidia-module" /usr/local/lib/nvidia-standin/load-nvidia-module
install -m 0644 "$src/nvidia-standin-module.service" /etc/systemd/system/nvidia-standin-module.service
systemctl daemon-reload
systemctl enable --now nvidia-standin-module.service
echo "stand-ins ready: $gpus GPU(s), ubuntu-drivers autoinstall=$autoinstall"
