"""Report what a training venv holds, as one JSON object (run by the venv's own python).

Usage: python probe.py WHEEL [MARKER]
- versions of torch, torchvision and the project (from the installed metadata);
- torch's own view: __version__, its CUDA build, whether CUDA works and how many GPUs it sees;
- whether every requirement of WHEEL (the project's wheel) is satisfied by what is installed;
- whether MARKER records the sha256 of WHEEL (the project was installed from exactly it).
Never fails: a broken install shows up as errors in the report.
"""

import hashlib
import importlib.metadata as md
import json
import os
import sys
import zipfile

try:  # pip's vendored copy: present in every venv that has pip, whatever else is missing
    from pip._vendor.packaging.requirements import Requirement
except ImportError:  # pragma: no cover
    from packaging.requirements import Requirement

wheel = sys.argv[1]
marker = sys.argv[2] if len(sys.argv) > 2 else ""
report = {"python": ".".join(map(str, sys.version_info[:3])), "errors": []}


def version(name):
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


for name in ("torch", "torchvision", "ddp-cluster"):
    report[name] = version(name)

try:
    import torch

    report["torch_version"] = torch.__version__
    report["torch_cuda"] = torch.version.cuda or "cpu"
    report["cuda_available"] = bool(torch.cuda.is_available())
    report["cuda_devices"] = torch.cuda.device_count() if report["cuda_available"] else 0
    import torchvision  # noqa: F401  (the pair must import together)
except Exception as exc:  # noqa: BLE001
    report["errors"].append(f"import torch/torchvision: {type(exc).__name__}: {exc}")
    report.setdefault("torch_cuda", None)
    report.setdefault("cuda_available", False)
    report.setdefault("cuda_devices", 0)

missing = []
wheel_sha = None
if os.path.isfile(wheel):
    with open(wheel, "rb") as f:
        wheel_sha = hashlib.sha256(f.read()).hexdigest()
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        lines = z.read(meta).decode().splitlines()
    for line in lines:
        if not line.startswith("Requires-Dist:"):
            continue
        req = Requirement(line.split(":", 1)[1].strip())
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        have = version(req.name)
        if have is None or not req.specifier.contains(have, prereleases=True):
            missing.append(f"{req} (have {have})")
else:
    missing.append(f"wheel {wheel} not on the node")
report["missing"] = missing
report["deps_ok"] = not missing
report["wheel_sha256"] = wheel_sha
installed_sha = None
if marker and os.path.isfile(marker):
    with open(marker) as f:
        installed_sha = f.read().strip()
report["project_ok"] = (
    bool(wheel_sha) and installed_sha == wheel_sha and bool(report["ddp-cluster"])
)
print(json.dumps(report))
