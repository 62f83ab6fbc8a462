#!/usr/bin/env bash
# The scenario's dependency step: the torch image (cached, tools/build-torch-image.sh), then
# the podman network `cl-net` with fixed addresses and no DNS, so that the nodes reach each
# other only by the IP addresses of the inventory (molecule's create step reuses an existing
# network and would make one with DNS on; its destroy step removes it).
set -euo pipefail
cd "$(dirname "$0")/../.."
tools/build-torch-image.sh
NET=cl-net
SUBNET=10.89.7.0/24
if podman network exists "$NET"; then
  if [ "$(podman network inspect --format '{{.DNSEnabled}}' "$NET")" != false ]; then
    podman network rm -f "$NET" >/dev/null
  fi
fi
podman network exists "$NET" || podman network create --disable-dns --subnet "$SUBNET" "$NET" >/dev/null
echo "podman network $NET: $SUBNET, DNS $(podman network inspect --format '{{.DNSEnabled}}' "$NET")"
