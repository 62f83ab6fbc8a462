#!/usr/bin/env bash
# Build the wheelhouse the deployment role (ansible/roles/training_env) installs from when
# training_env_torch_source is "wheelhouse": torch, torchvision and every runtime dependency
# of the project, as wheels, in one folder that is copied to air-gapped nodes.
# Cached: nothing is downloaded again while the requirement list and the Python tag match.
#
#   tools/wheelhouse-build.sh [DIR]        (default .cache/wheelhouse)
#   PIP=/path/to/pip                       pip to download with (default .venv/bin/pip)
#   WHEELHOUSE_PIP_ARGS="..."              extra pip download arguments, for example wheels for
#                                          the nodes' Python when it differs from this one:
#                                          "--python-version 3.10 --only-binary=:all:"
#   WHEELHOUSE_INDEX_URL=URL               index to take torch/torchvision from (a CUDA build's
#                                          index); PyPI (or pip's configuration) otherwise
set -euo pipefail
cd "$(dirname "$0")/.."

dir=${1:-.cache/wheelhouse}
pip=${PIP:-.venv/bin/pip}
[ -x "$pip" ] || pip="python3 -m pip"

# The project's runtime requirements, straight from pyproject.toml (torch pins included).
mapfile -t reqs < <(python3 - <<'PY'
import tomllib
with open("pyproject.toml", "rb") as f:
    for req in tomllib.load(f)["project"]["dependencies"]:
        print(req)
PY
)
pyver=$($pip --version | grep -oE 'python [0-9.]+' | cut -d' ' -f2)
inputs=$(printf '%s\n' "${reqs[@]}" "python=$pyver" "args=${WHEELHOUSE_PIP_ARGS:-}" \
  "index=${WHEELHOUSE_INDEX_URL:-}" | sha256sum | cut -c1-16)

mkdir -p "$dir"
# The list the wheelhouse serves: what tools/build-torch-image.sh installs from it.
printf '%s\n' "${reqs[@]}" > "$dir/requirements.txt"
if [ -f "$dir/.inputs" ] && [ "$(cat "$dir/.inputs")" = "$inputs" ]; then
  echo "wheelhouse $dir is up to date ($(ls "$dir" | grep -c '\.whl$') wheels)"
  exit 0
fi

echo "building wheelhouse $dir (torch is about 3 GB of wheels; a few minutes, once)"
# Start from an empty folder so that wheels of an older requirement list do not linger.
rm -f "$dir/.inputs" "$dir"/*.whl
index_args=()
[ -n "${WHEELHOUSE_INDEX_URL:-}" ] && index_args=(--extra-index-url "$WHEELHOUSE_INDEX_URL")
# shellcheck disable=SC2086
$pip download --quiet --only-binary=:all: --dest "$dir" "${index_args[@]}" \
  ${WHEELHOUSE_PIP_ARGS:-} "${reqs[@]}"
echo "$inputs" > "$dir/.inputs"
echo "wheelhouse $dir: $(ls "$dir" | grep -c '\.whl$') wheels, $(du -sh "$dir" | cut -f1)"
