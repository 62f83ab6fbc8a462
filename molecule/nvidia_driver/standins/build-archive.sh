#!/bin/bash
# STAND-IN for the Ubuntu archive (molecule scenario nvidia_driver). Builds, inside the test
# container, a flat apt repository of small dummy packages with the names, versions and
# relations of Ubuntu's NVIDIA packages (README.md says where each relation comes from).
# For a driver B with variant V (V = "", -server, -open, -server-open; U = -server for the
# server variants, "" otherwise):
#   nvidia-driver-B<V>             Depends on utils, compute-utils, libnvidia-compute, dkms;
#                                  Modaliases: the GPUs it supports (proprietary: not Blackwell)
#   nvidia-headless-no-dkms-B<V>   the headless userspace, no kernel module, no nvidia-utils
#   nvidia-headless-B<V>           headless-no-dkms + nvidia-dkms-B<V>
#   nvidia-utils-B<U>              nvidia-smi (+ nvidia-modprobe) stand-ins
#   nvidia-compute-utils-B<U>      nvidia-persistenced and Ubuntu's static unit
#   libnvidia-compute-B<U>         the libcuda stand-in at the driver's version
#   nvidia-dkms-B<V>               "builds" the module (dkms status): fails without kernel headers
#   linux-modules-nvidia-B<V>-<kernel release>            the signed prebuilt module
#   linux-modules-nvidia-B<V>-{generic,generic-hwe-22.04}  its metapackages, per kernel flavour
#   nvidia-fabricmanager-B, libnvidia-nscq-B   at the driver's version and an older point release
#   nvlsm                          the NVLink subnet manager (NVLink 5), dated versions of its own
# plus a transitional nvidia-driver-510 (-> 535), ubuntu-drivers-common (the ubuntu-drivers
# stand-in), the kernel image metapackages linux-image-generic and linux-image-generic-hwe-22.04,
# and linux-headers-$(uname -r). Usage: build-archive.sh SRC_DIR REPO_DIR
set -euo pipefail

src=$1
repo=$2
kver=$(uname -r)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rm -rf "$repo"
mkdir -p "$repo"
suffix=0ubuntu0.22.04.1

# PCI device IDs in the Modaliases of the driver packages (README.md): A100 SXM4, A100 PCIe,
# H100 SXM5 for every branch that supports them; B200 only in the -open variants (Blackwell
# needs the open kernel modules).
modaliases() { local out="" id; for id in "$@"; do out+="${out:+, }pci:v000010DEd0000${id}sv*sd*bc03sc*i*"; done; echo "nvidia($out)"; }

# deb NAME VERSION [extra control lines...]: start a package tree, echo its root.
deb() {
  local name=$1 version=$2 dir
  shift 2
  dir="$work/$name=$version"
  mkdir -p "$dir/DEBIAN"
  {
    echo "Package: $name"
    echo "Version: $version"
    echo "Architecture: all"
    echo "Maintainer: ddp-cluster tests <tests@example.invalid>"
    printf '%s\n' "$@" | grep -q '^Section:' || echo "Section: restricted/misc"
    echo "Priority: optional"
    for line in "$@"; do [ -n "$line" ] && echo "$line"; done
    echo "Description: stand-in for Ubuntu's $name (molecule scenario nvidia_driver)"
  } >"$dir/DEBIAN/control"
  echo "$dir"
}

build() { # ROOT
  dpkg-deb -Zgzip --root-owner-group --build "$1" "$repo/$(basename "$1" | tr = _).deb" >/dev/null
}

userspace() { # B U UPSTREAM: the packages shared by a branch's open and proprietary variants
  local b=$1 u=$2 up=$3 v="$3-$suffix" root
  root=$(deb "libnvidia-compute-$b$u" "$v" \
    "Provides: libnvidia-compute" "Conflicts: libnvidia-compute" "Replaces: libnvidia-compute")
  mkdir -p "$root/usr/lib/x86_64-linux-gnu" "$root/usr/lib/nvidia-standin"
  install -m 0644 "$src/libcuda.so.1" "$root/usr/lib/x86_64-linux-gnu/libcuda.so.1"
  echo "$up" >"$root/usr/lib/nvidia-standin/library-version"
  build "$root"

  root=$(deb "nvidia-utils-$b$u" "$v" \
    "Provides: nvidia-utils" "Conflicts: nvidia-utils" "Replaces: nvidia-utils")
  mkdir -p "$root/usr/bin"
  sed "s/@UPSTREAM@/$up/; s/@PACKAGE@/nvidia-utils-$b$u/" "$src/nvidia-smi.in" >"$root/usr/bin/nvidia-smi"
  install -m 0755 "$src/nvidia-modprobe" "$root/usr/bin/nvidia-modprobe"
  chmod 0755 "$root/usr/bin/nvidia-smi"
  build "$root"

  root=$(deb "nvidia-compute-utils-$b$u" "$v" "Depends: libnvidia-compute-$b$u (= $v)" \
    "Provides: nvidia-compute-utils" "Conflicts: nvidia-compute-utils" "Replaces: nvidia-compute-utils")
  mkdir -p "$root/usr/bin" "$root/lib/systemd/system"
  install -m 0755 "$src/nvidia-persistenced" "$root/usr/bin/nvidia-persistenced"
  install -m 0644 "$src/nvidia-persistenced.service" "$root/lib/systemd/system/nvidia-persistenced.service"
  build "$root"
}

variant() { # B V UPSTREAM MODALIASES [PREFER]: one driver variant, e.g. 570 -server-open ...
  local b=$1 s=$2 up=$3 ids=$4 prefer=${5:-} v="$3-$suffix" u="" kind=proprietary root f
  case "$s" in -server*) u=-server ;; esac
  case "$s" in *-open) kind=open ;; esac

  root=$(deb "nvidia-dkms-$b$s" "$v" "Depends: dkms" \
    "Provides: nvidia-dkms-kernel" "Conflicts: nvidia-dkms-kernel" "Replaces: nvidia-dkms-kernel")
  mkdir -p "$root/usr/lib/nvidia-standin/dkms"
  echo "$up $kind" >"$root/usr/lib/nvidia-standin/dkms/module"
  cat >"$root/DEBIAN/postinst" <<'EOF'
#!/bin/sh
# Stand-in for the DKMS build of the nvidia module: it needs the running kernel's headers.
set -e
if [ "$1" = configure ] && [ ! -e "/lib/modules/$(uname -r)/build" ]; then
  echo "Error! Your kernel headers for kernel $(uname -r) cannot be found." >&2
  exit 1
fi
mkdir -p /var/lib/nvidia-standin/dkms
uname -r >/var/lib/nvidia-standin/dkms/@UPSTREAM@
EOF
  sed -i "s/@UPSTREAM@/$up/" "$root/DEBIAN/postinst"
  printf '#!/bin/sh\nrm -f /var/lib/nvidia-standin/dkms/%s\n' "$up" >"$root/DEBIAN/postrm"
  chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/postrm"
  build "$root"

  build "$(deb "nvidia-driver-$b$s" "$v" \
    "Depends: nvidia-utils-$b$u (= $v), nvidia-compute-utils-$b$u (= $v), libnvidia-compute-$b$u (= $v), nvidia-dkms-$b$s (= $v)" \
    "Provides: nvidia-driver-binary" "Conflicts: nvidia-driver-binary" "Replaces: nvidia-driver-binary" \
    "Modaliases: $(modaliases $ids)" "${prefer:+Prefer-Variant: $prefer}")"
  [ -n "$u" ] || return 0

  # Server variants: the headless sets and the signed prebuilt modules, as --gpgpu installs them.
  build "$(deb "nvidia-headless-no-dkms-$b$s" "$v" \
    "Depends: nvidia-compute-utils-$b$u (= $v), libnvidia-compute-$b$u (= $v)" \
    "Provides: nvidia-headless-no-dkms" "Conflicts: nvidia-headless-no-dkms" "Replaces: nvidia-headless-no-dkms")"
  build "$(deb "nvidia-headless-$b$s" "$v" \
    "Depends: nvidia-headless-no-dkms-$b$s (= $v), nvidia-dkms-$b$s (= $v)")"
  root=$(deb "linux-modules-nvidia-$b$s-$kver" "$kver.$v" \
    "Provides: linux-modules-nvidia" "Conflicts: linux-modules-nvidia" "Replaces: linux-modules-nvidia")
  mkdir -p "$root/lib/modules/$kver/kernel/nvidia-standin"
  echo "$up $kind" >"$root/lib/modules/$kver/kernel/nvidia-standin/module"
  build "$root"
  for f in generic generic-hwe-22.04; do
    build "$(deb "linux-modules-nvidia-$b$s-$f" "$kver.$v" "Depends: linux-modules-nvidia-$b$s-$kver (= $kver.$v)")"
  done
}

fabricmanager() { # B UPSTREAM: nvidia-fabricmanager-B and libnvidia-nscq-B at one version
  local b=$1 up=$2 v="$2-$suffix" root
  root=$(deb "nvidia-fabricmanager-$b" "$v")
  mkdir -p "$root/usr/bin" "$root/lib/systemd/system"
  sed "s/@UPSTREAM@/$up/" "$src/nv-fabricmanager.in" >"$root/usr/bin/nv-fabricmanager"
  chmod 0755 "$root/usr/bin/nv-fabricmanager"
  install -m 0644 "$src/nvidia-fabricmanager.service" "$root/lib/systemd/system/nvidia-fabricmanager.service"
  build "$root"
  build "$(deb "libnvidia-nscq-$b" "$v")"
}

a100=(20B0 20B5) h100=2330 b200=2901
userspace 470 "" 470.256.02
variant 470 "" 470.256.02 "${a100[*]}"
userspace 535 "" 535.183.01
variant 535 "" 535.183.01 "${a100[*]} $h100"
userspace 535 -server 535.183.06
variant 535 -server 535.183.06 "${a100[*]} $h100"
# 570: the open variants carry Prefer-Variant: Open, so ubuntu-drivers prefers them.
userspace 570 "" 570.172.08
userspace 570 -server 570.172.08
for s in "" -server; do
  variant 570 "$s" 570.172.08 "${a100[*]} $h100" Open
  variant 570 "$s-open" 570.172.08 "${a100[*]} $h100 $b200" Open
done
fabricmanager 570 570.172.08
fabricmanager 570 570.133.20

# The NVLink subnet manager (NVIDIA's repository): versioned by date, not by driver branch.
root=$(deb nvlsm 2025.10.14-1)
mkdir -p "$root/opt/nvidia/nvlsm/sbin" "$root/usr/share/nvidia/nvlsm"
printf '#!/bin/sh\n# STAND-IN for nvlsm (molecule scenario nvidia_driver)\nexec sleep infinity\n' \
  >"$root/opt/nvidia/nvlsm/sbin/nvlsm"
chmod 0755 "$root/opt/nvidia/nvlsm/sbin/nvlsm"
echo "log_file /var/log/nvlsm.log" >"$root/usr/share/nvidia/nvlsm/nvlsm.conf"
build "$root"

# Ubuntu 22.04 keeps end-of-life branches as transitional packages of a newer one.
root=$(deb nvidia-driver-510 "535.183.01-$suffix" "Depends: nvidia-driver-535" "Section: oldlibs")
sed -i 's/^Description: .*/Description: Transitional package for nvidia-driver-535/' "$root/DEBIAN/control"
build "$root"
build "$(deb nvidia-utils-510 "535.183.01-$suffix" "Depends: nvidia-utils-535" "Section: oldlibs")"

root=$(deb dkms 3.0.3-1ubuntu1)
mkdir -p "$root/usr/sbin"
install -m 0755 "$src/dkms" "$root/usr/sbin/dkms"
build "$root"

root=$(deb ubuntu-drivers-common 1:0.9.6.2~0.22.04.6 "Depends: python3")
mkdir -p "$root/usr/bin"
install -m 0755 "$src/ubuntu-drivers" "$root/usr/bin/ubuntu-drivers"
build "$root"

# The kernel: the versioned image (already "installed" as the running kernel) and its flavour
# metapackages; Ubuntu's linux-image-generic-hwe-22.04 depends on the versioned image.
build "$(deb "linux-image-$kver" "$kver")"
for f in generic generic-hwe-22.04; do
  build "$(deb "linux-image-$f" "$kver" "Depends: linux-image-$kver")"
done
root=$(deb "linux-headers-$kver" 1.0-standin)
mkdir -p "$root/usr/src/linux-headers-$kver" "$root/lib/modules/$kver"
ln -s "/usr/src/linux-headers-$kver" "$root/lib/modules/$kver/build"
build "$root"

cd "$repo"
apt-ftparchive packages . >Packages
apt-ftparchive release . >Release
echo "stand-in archive: $(ls ./*.deb | wc -l) packages in $repo"
