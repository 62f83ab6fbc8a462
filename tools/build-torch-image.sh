#!/usr/bin/env bash
# Build the container image of the `cluster` molecule scenario: the node image plus the
# training venv (torch, torchvision and the project's other requirements, installed from the
# wheelhouse exactly as the training_env role installs them), so that the two-node scenario
# does not install 5.5 GB twice. The role still inspects and verifies that venv on converge;
# the `torchrun` scenario covers the install itself.
# Cached: rebuilt only when the node image, the wheelhouse or this script changed.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${TORCH_IMAGE:-localhost/ddp-cluster-torch:bookworm}
NODE_IMAGE=${NODE_IMAGE:-localhost/ddp-cluster-node:bookworm}
WHEELHOUSE=${WHEELHOUSE:-.cache/wheelhouse}
# Must match training_env_venv of the scenario (the role's default).
VENV=/opt/ddp-cluster/venv
CTR=cl-torch-image-build

tools/build-node-image.sh
tools/wheelhouse-build.sh "$WHEELHOUSE"

inputs=$( {
  podman image inspect --format '{{.Id}}' "$NODE_IMAGE"
  cat "$WHEELHOUSE/.inputs"
  echo "$VENV"
  sha256sum "$0" | cut -d' ' -f1
} | sha256sum | cut -c1-16)

if podman image exists "$IMAGE" &&
   [ "$(podman image inspect --format '{{ index .Labels "ddp.inputs" }}' "$IMAGE")" = "$inputs" ]; then
  exit 0
fi

echo "building $IMAGE: the training venv from $WHEELHOUSE (about 3 minutes, once)"
podman rm -f "$CTR" >/dev/null 2>&1 || true
trap 'podman rm -f "$CTR" >/dev/null 2>&1 || true' EXIT
podman run --name "$CTR" --network none \
  --volume "$(realpath "$WHEELHOUSE"):/mnt/wheelhouse:ro" "$NODE_IMAGE" \
  /bin/sh -euc "python3 -m venv $VENV
    $VENV/bin/pip install --quiet --disable-pip-version-check --no-index \
      --find-links /mnt/wheelhouse --requirement /mnt/wheelhouse/requirements.txt
    rm -rf /root/.cache"
podman commit --quiet --change 'CMD ["/sbin/init"]' --change "LABEL ddp.inputs=$inputs" \
  "$CTR" "$IMAGE" >/dev/null
echo "built $IMAGE"
