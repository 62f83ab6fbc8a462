#!/bin/bash
# STAND-IN for the Ubuntu archive (molecule scenario nvidia_driver). Builds, inside the test
# container, a flat apt repository of small dummy packages with the names, versions and
# relations of Ubuntu's NVIDIA packages:
#   nvidia-driver-<B>          Depends on the four below; Provides/Conflicts nvidia-driver-binary
#   nvidia-utils-<B>           ships the nvidia-smi stand-in (so it appears only after install)
#   nvidia-compute-utils-<B>   ships nvidia-persistenced and Ubuntu's (static) unit for it
#   libnvidia-compute-<B>      the NVML library the driver version must match
#   nvidia-dkms-<B>            "builds" the module: fails without kernel headers, like DKMS
# for B in 470, 535 and 535-server, plus ubuntu-drivers-common (the ubuntu-drivers stand-in)
# and linux-headers-$(uname -r). Usage: build-archive.sh SRC_DIR REPO_DIR
set -euo pipefail

src=$1
repo=$2
kver=$(uname -r)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rm -rf "$repo"
mkdir -p "$repo"

# deb NAME VERSION [extra control lines...]: start a package tree, echo its root.
deb() {
  local name=$1 version=$2
  shift 2
  mkdir -p "$work/$name/DEBIAN"
  {
    echo "Package: $name"
    echo "Version: $version"
    echo "Architecture: all"
    echo "Maintainer: ddp-cluster tests <tests@example.invalid>"
    echo "Section: restricted/misc"
    echo "Priority: optional"
    for line in "$@"; do echo "$line"; done
    echo "Description: stand-in for Ubuntu's $name (molecule scenario nvidia_driver)"
  } >"$work/$name/DEBIAN/control"
  echo "$work/$name"
}

build() {
  dpkg-deb -Zgzip --root-owner-group --build "$work/$1" "$repo/$1.deb" >/dev/null
}

# flavour BRANCH SUFFIX UPSTREAM: the packages of one driver, e.g. 535 -server 535.183.06.
flavour() {
  local b=$1 s=$2 up=$3
  local v="$up-0ubuntu0.22.04.1" us="" root
  case "$s" in -server*) us=-server ;; esac

  root=$(deb "libnvidia-compute-$b$s" "$v" \
    "Provides: libnvidia-compute" "Conflicts: libnvidia-compute" "Replaces: libnvidia-compute")
  mkdir -p "$root/usr/lib/x86_64-linux-gnu"
  : >"$root/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.$up"
  build "libnvidia-compute-$b$s"

  root=$(deb "nvidia-utils-$b$us" "$v" \
    "Provides: nvidia-utils" "Conflicts: nvidia-utils" "Replaces: nvidia-utils")
  mkdir -p "$root/usr/bin"
  sed "s/@UPSTREAM@/$up/; s/@PACKAGE@/nvidia-utils-$b$us/" "$src/nvidia-smi.in" >"$root/usr/bin/nvidia-smi"
  chmod 0755 "$root/usr/bin/nvidia-smi"
  build "nvidia-utils-$b$us"

  root=$(deb "nvidia-compute-utils-$b$s" "$v" "Depends: libnvidia-compute-$b$s (= $v)" \
    "Provides: nvidia-compute-utils" "Conflicts: nvidia-compute-utils" "Replaces: nvidia-compute-utils")
  mkdir -p "$root/usr/bin" "$root/lib/systemd/system"
  install -m 0755 "$src/nvidia-persistenced" "$root/usr/bin/nvidia-persistenced"
  install -m 0644 "$src/nvidia-persistenced.service" "$root/lib/systemd/system/nvidia-persistenced.service"
  build "nvidia-compute-utils-$b$s"

  root=$(deb "nvidia-dkms-$b$s" "$v" \
    "Provides: nvidia-dkms-kernel" "Conflicts: nvidia-dkms-kernel" "Replaces: nvidia-dkms-kernel")
  mkdir -p "$root/usr/lib/nvidia-standin"
  echo "$up" >"$root/usr/lib/nvidia-standin/module-version"
  cat >"$root/DEBIAN/postinst" <<'EOF'
#!/bin/sh
# Stand-in for the DKMS build of the nvidia module: it needs the running kernel's headers.
set -e
if [ "$1" = configure ] && [ ! -e "/lib/modules/$(uname -r)/build" ]; then
  echo "Error! Your kernel headers for kernel $(uname -r) cannot be found." >&2
  exit 1
fi
EOF
  chmod 0755 "$root/DEBIAN/postinst"
  build "nvidia-dkms-$b$s"

  deb "nvidia-driver-$b$s" "$v" \
    "Depends: nvidia-utils-$b$us (= $v), nvidia-compute-utils-$b$s (= $v), libnvidia-compute-$b$s (= $v), nvidia-dkms-$b$s (= $v)" \
    "Provides: nvidia-driver-binary" "Conflicts: nvidia-driver-binary" "Replaces: nvidia-driver-binary" >/dev/null
  build "nvidia-driver-$b$s"
}

flavour 470 "" 470.256.02
flavour 535 "" 535.183.01
flavour 535 -server 535.183.06

root=$(deb ubuntu-drivers-common 1:0.9.6.2~0.22.04.6 "Depends: python3")
mkdir -p "$root/usr/bin"
install -m 0755 "$src/ubuntu-drivers" "$root/usr/bin/ubuntu-drivers"
build ubuntu-drivers-common

root=$(deb "linux-headers-$kver" 1.0-standin)
mkdir -p "$root/usr/src/linux-headers-$kver" "$root/lib/modules/$kver"
ln -s "/usr/src/linux-headers-$kver" "$root/lib/modules/$kver/build"
build "linux-headers-$kver"

cd "$repo"
apt-ftparchive packages . >Packages
apt-ftparchive release . >Release
echo "stand-in archive: $(ls ./*.deb | wc -l) packages in $repo"
