#!/bin/bash
# Installs the stand-ins in a test container (molecule scenario nvidia_driver, prepare.yml).
# The node is described by environment variables (prepare.yml passes each host's nvd_standin):
#   NVD_GPUS         number of GPUs (0: a host without an NVIDIA device)
#   NVD_GPU_ID       their PCI device ID, NVD_GPU_NAME their name
#   NVD_NVSWITCHES   number of NVSwitch bridges (class 0680, HGX H100; 0: a PCIe node)
#   NVD_NVLINK5      yes: an NVLink 5 baseboard (HGX B200), whose NVSwitches the host reaches
#                    through a ConnectX-7 bridge (two ports, each a full and a limited function)
#   NVD_RDMA         yes: an InfiniBand adapter is present
#   NVD_SECUREBOOT   yes|no, what mokutil --sb-state reports
#   NVD_KERNEL       the installed kernel image metapackage's flavour (generic, generic-hwe-22.04)
#   NVD_AUTOINSTALL  yes|no: whether ubuntu-drivers still has autoinstall
# libcuda.so.1 (built from libcuda.c on the controller) must lie beside this script.
set -euo pipefail
src=$(cd "$(dirname "$0")" && pwd)
archive=/srv/nvidia-standin-archive
kver=$(uname -r)

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

# The running kernel as Ubuntu installs it: the versioned image and its flavour metapackage.
dpkg -i "$archive/linux-image-${kver}_${kver}.deb" "$archive/linux-image-${NVD_KERNEL}_${kver}.deb" >/dev/null

# The hardware: GPUs, NVSwitch bridges, an InfiniBand adapter, the Secure Boot state.
mkdir -p /etc/nvidia-standin
rm -f /etc/nvidia-standin/gpus /etc/nvidia-standin/nvswitches /etc/nvidia-standin/nvlink5-bridges \
  /etc/nvidia-standin/fabric /etc/nvidia-standin/rdma
for i in $(seq 1 "$NVD_GPUS"); do
  printf '0000:%02x:00.0 %s %s\n' "$((i + 0x10))" "$NVD_GPU_ID" "$NVD_GPU_NAME" >>/etc/nvidia-standin/gpus
done
for i in $(seq 1 "$NVD_NVSWITCHES"); do
  printf '0000:%02x:00.0 22a3\n' "$((i + 0x80))" >>/etc/nvidia-standin/nvswitches
done
if [ "$NVD_NVLINK5" = yes ]; then
  printf '0000:05:00.0 lpf\n0000:05:00.1 pf\n0000:06:00.0 lpf\n0000:06:00.1 pf\n' >/etc/nvidia-standin/nvlink5-bridges
fi
# What nvidia-smi, libcuda and fabric manager see: an NVLink 4 or NVLink 5 fabric, or none.
if [ "$NVD_NVLINK5" = yes ]; then
  echo nvlink5 >/etc/nvidia-standin/fabric
elif [ "$NVD_NVSWITCHES" -gt 0 ]; then
  echo nvlink4 >/etc/nvidia-standin/fabric
fi
[ "$NVD_RDMA" != yes ] || touch /etc/nvidia-standin/rdma
echo "$NVD_SECUREBOOT" >/etc/nvidia-standin/secureboot
echo "autoinstall=$NVD_AUTOINSTALL" >/etc/nvidia-standin/ubuntu-drivers.conf

# lspci, mokutil, and the kernel loading the nvidia module at boot.
install -m 0755 "$src/lspci" /usr/local/bin/lspci
install -m 0755 "$src/mokutil" /usr/local/bin/mokutil
install -D -m 0755 "$src/load-nvidia-module" /usr/local/lib/nvidia-standin/load-nvidia-module
install -m 0644 "$src/nvidia-standin-module.service" /etc/systemd/system/nvidia-standin-module.service
systemctl daemon-reload
systemctl enable --now nvidia-standin-module.service
echo "stand-ins ready: $NVD_GPUS x $NVD_GPU_NAME, $NVD_NVSWITCHES NVSwitch(es), NVLink 5 $NVD_NVLINK5," \
  "kernel $NVD_KERNEL," \
  "Secure Boot $NVD_SECUREBOOT, ubuntu-drivers autoinstall=$NVD_AUTOINSTALL"
