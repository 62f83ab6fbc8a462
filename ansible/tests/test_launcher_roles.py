"""The training_env and torchrun_service roles on the controller, without containers:
their interface (defaults, argument specs, site.yml, launch.yml, stop.yml), the torchrun
arguments each node gets, the reproducible project wheel, the venv probe, and the torchrun
wrapper's exit on SIGTERM. The molecule scenarios `torchrun` and `cluster` run them for real."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLES = ROOT / "ansible" / "roles"
BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


def _yaml(path: Path):
    return yaml.safe_load(path.read_text())


def _playbook(tmp_path: Path, play: list, inventory: dict, *args: str):
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play, sort_keys=False))
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory, sort_keys=False))
    return subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(tmp_path / "hosts.yml")]
        + [str(tmp_path / "play.yml"), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**ENV, "ANSIBLE_ROLES_PATH": str(ROLES), "ANSIBLE_NOCOLOR": "1"},
        timeout=300,
        check=False,
    )


# --- interface -----------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["training_env", "torchrun_service"])
def test_every_input_is_prefixed_commented_and_specified(role):
    defaults = _yaml(ROLES / role / "defaults" / "main.yml")
    specs = _yaml(ROLES / role / "meta" / "argument_specs.yml")["argument_specs"]
    specified = {name: opt for entry in specs.values() for name, opt in entry["options"].items()}
    assert sorted(specified) == sorted(defaults)
    lines = (ROLES / role / "defaults" / "main.yml").read_text().splitlines()
    for name, value in defaults.items():
        assert name.startswith(f"{role}_")
        # The comment above it, or above the group of variables it belongs to.
        row = next(i for i, line in enumerate(lines) if line.startswith(f"{name}:")) - 1
        while row > 0 and (lines[row].startswith(f"{role}_") or lines[row].startswith(" ")):
            row -= 1
        assert lines[row].startswith("#"), f"{name} has no comment above it"
        assert specified[name].get("description"), name
        if "default" in specified[name] and "{{" not in str(value):
            assert specified[name]["default"] == value, name
    readme = (ROLES / role / "README.md").read_text()
    for name in defaults:
        assert name in readme or name.rsplit("_", 1)[0] in readme, f"{name} not in the README"


def test_site_yml_runs_driver_then_deployment_then_launcher():
    plays = _yaml(ROOT / "site.yml")
    roles = [r["role"] if isinstance(r, dict) else r for play in plays for r in play["roles"]]
    assert roles == ["nvidia_driver", "training_env", "torchrun_service"]


@pytest.mark.parametrize("playbook", ["launch.yml", "stop.yml"])
def test_launch_and_stop_pass_syntax_check(playbook):
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), playbook, "-i", "inventory", "--syntax-check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=ENV,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- the torchrun arguments of each node ---------------------------------------------------------


def _render_units(tmp_path: Path, hosts: dict, expect_failure=False, **group_vars):
    play = [
        {
            "name": "Render the unit of every host",
            "hosts": "gpu_nodes",
            "connection": "local",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "Work out the torchrun arguments",
                    "ansible.builtin.include_role": {
                        "name": "torchrun_service",
                        "tasks_from": "facts",
                        "public": True,
                    },
                },
                {
                    "name": "Render the unit",
                    "ansible.builtin.template": {
                        "src": str(ROLES / "torchrun_service" / "templates" / "unit.service.j2"),
                        "dest": f"{tmp_path}/{{{{ inventory_hostname }}}}.service",
                        "mode": "0644",
                    },
                },
                {
                    "name": "Render the environment file",
                    "ansible.builtin.template": {
                        "src": str(ROLES / "torchrun_service" / "templates" / "env.j2"),
                        "dest": f"{tmp_path}/{{{{ inventory_hostname }}}}.env",
                        "mode": "0644",
                    },
                },
            ],
        }
    ]
    inventory = {
        "all": {
            "children": {
                "gpu_nodes": {
                    "hosts": hosts,
                    "vars": {
                        "ansible_python_interpreter": sys.executable,
                        "torchrun_service_after_persistenced": False,
                        **group_vars,
                    },
                }
            }
        }
    }
    proc = _playbook(tmp_path, play, inventory)
    if expect_failure:
        assert proc.returncode != 0, proc.stdout
        return proc.stdout + proc.stderr
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {name: (tmp_path / f"{name}.service").read_text() for name in hosts}


def _exec_start(unit: str) -> list[str]:
    text = unit.split("ExecStart=", 1)[1].split("\nRestart=", 1)[0]
    return text.replace("\\\n", " ").split()


def _env(tmp_path: Path, host: str) -> dict[str, str]:
    lines = (tmp_path / f"{host}.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def test_three_ip_nodes_default_to_the_first_hosts_rendezvous_without_dns(tmp_path):
    hosts = {f"gpu-{i}": {"ansible_host": f"192.0.2.1{i}"} for i in (1, 2, 3)}
    units = _render_units(
        tmp_path,
        hosts,
        torchrun_service_nproc_per_node=8,
        torchrun_service_job_id="coco-r50",
        torchrun_service_nccl_ib_disable=False,
    )
    for name, unit in units.items():
        args = _exec_start(unit)
        assert args[:2] == [
            "/opt/ddp-cluster/venv/bin/python",
            "/usr/local/lib/ddp-train/torchrun_service.py",
        ]
        assert args[2:11] == [
            "--nnodes=${DDP_NNODES}",
            "--nproc-per-node=8",
            "--rdzv-backend=c10d",
            "--rdzv-endpoint=${DDP_RDZV_ENDPOINT}",
            "--rdzv-id=coco-r50",
            "--rdzv-conf=${DDP_RDZV_CONF}",
            "--local-addr=${DDP_LOCAL_ADDR}",
            "--max-restarts=3",
            "-m",
        ]
        assert args[11:] == [
            "training",
            "--config",
            "/etc/ddp-train/train.yaml",
            "--output-dir",
            "/var/lib/ddp-train/jobs/coco-r50",
        ]
        # launch.yml's launch.env overrides the env file's defaults (read later, may be absent).
        assert unit.index("EnvironmentFile=/etc/ddp-train/ddp-train.env\n") < unit.index(
            "EnvironmentFile=-/etc/ddp-train/launch.env\n"
        )
        env = _env(tmp_path, name)
        is_host = "true" if name == "gpu-1" else "false"
        # Every address is the host's ansible_host IP: no name needs to resolve.
        assert env["DDP_NNODES"] == "3:3"
        assert env["DDP_RDZV_ENDPOINT"] == "192.0.2.11:29400"
        assert env["DDP_RDZV_CONF"] == f"join_timeout=900,last_call_timeout=30,is_host={is_host}"
        assert env["DDP_LOCAL_ADDR"] == hosts[name]["ansible_host"]
        assert env["DDP_NODES"] == "gpu-1=192.0.2.11,gpu-2=192.0.2.12,gpu-3=192.0.2.13"
        assert env["DDP_RDZV_RETRY_SEC"] == "15" and env["DDP_RDZV_RETRY_FOR"] == "0"
        assert "User=ddp\n" in unit and "Restart=on-failure\n" in unit
        assert "RestartPreventExitStatus=2\n" in unit  # a user mistake is not retried
        assert "KillSignal=SIGTERM\n" in unit and "TimeoutStopSec=120\n" in unit
        assert "ReadWritePaths=/var/lib/ddp-train/jobs/coco-r50\n" in unit
        # NCCL may use InfiniBand: the verbs devices and unlimited locked memory.
        assert "DeviceAllow=char-infiniband_verbs rw\n" in unit
        assert "LimitMEMLOCK=infinity\n" in unit
        assert "After=network-online.target\n" in unit
        assert "--shared-output-dir" not in unit


def test_an_elastic_range_a_shared_output_folder_and_an_interface_address(tmp_path):
    units = _render_units(
        tmp_path,
        {"n1": {"ansible_host": "node-one.example"}, "n2": {"ansible_host": "192.0.2.22"}},
        torchrun_service_nnodes_min=1,
        torchrun_service_nnodes_max=2,
        torchrun_service_output_shared=True,
        torchrun_service_rdzv_last_call_timeout=5,
        torchrun_service_interface="lo",
    )
    # n1's ansible_host is a name: it advertises the address of torchrun_service_interface.
    assert _env(tmp_path, "n1")["DDP_LOCAL_ADDR"] == "127.0.0.1"
    assert _env(tmp_path, "n1")["DDP_RDZV_ENDPOINT"] == "127.0.0.1:29400"
    assert _env(tmp_path, "n2")["DDP_RDZV_ENDPOINT"] == "127.0.0.1:29400"
    assert _env(tmp_path, "n2")["DDP_NNODES"] == "1:2"
    assert "last_call_timeout=5," in _env(tmp_path, "n2")["DDP_RDZV_CONF"]
    assert _exec_start(units["n2"])[-1] == "--shared-output-dir"


def test_a_name_without_facts_for_its_interface_fails_naming_the_host_and_the_fix(tmp_path):
    out = _render_units(
        tmp_path,
        {"n1": {"ansible_host": "node-one.example"}},
        expect_failure=True,
        torchrun_service_interface="no-such-if0",
    )
    assert "n1 has no IPv4 address on torchrun_service_interface 'no-such-if0'" in out


def test_one_node_meets_itself_on_the_cpu_without_infiniband(tmp_path):
    units = _render_units(
        tmp_path,
        {"solo": {"ansible_host": "127.0.0.1"}},
        torchrun_service_nccl_ib_disable=True,
        torchrun_service_after_persistenced=True,
    )
    args = _exec_start(units["solo"])
    # One process per GPU that nvidia-smi lists; one CPU process where there is none.
    gpus = 0
    if shutil.which("nvidia-smi"):
        out = subprocess.run(["nvidia-smi", "--list-gpus"], capture_output=True, text=True)
        gpus = sum(line.startswith("GPU ") for line in out.stdout.splitlines())
    assert args[2:4] == ["--nnodes=${DDP_NNODES}", f"--nproc-per-node={gpus or 1}"]
    env = _env(tmp_path, "solo")
    assert env["DDP_NNODES"] == "1:1" and env["DDP_RDZV_ENDPOINT"] == "127.0.0.1:29400"
    assert env["DDP_RDZV_CONF"].endswith(",is_host=true")
    assert "infiniband" not in units["solo"] and "LimitMEMLOCK" not in units["solo"]
    assert "After=network-online.target nvidia-persistenced.service\n" in units["solo"]


# --- the training flags, checked on the controller ------------------------------------------------


def test_the_roles_flag_list_is_the_training_clis():
    from training.config import get_args_parser

    cli = {
        a.option_strings[0][2:]
        for a in get_args_parser()._actions
        if a.option_strings and a.option_strings[0].startswith("--") and a.dest != "help"
    }
    listed = _yaml(ROLES / "torchrun_service" / "vars" / "main.yml")[
        "_torchrun_service_train_flags"
    ]
    assert sorted(listed) == sorted(cli)


def test_a_typo_in_the_training_flags_fails_the_play_naming_the_nearest_flag(tmp_path):
    out = _render_units(
        tmp_path,
        {"gpu-1": {}, "gpu-2": {}},
        expect_failure=True,
        torchrun_service_train_args={
            "epoch": 3,
            "batch_size": 8,
            "output-dir": "/x",
            "shared_output_dir": True,
        },
    )
    assert "'epoch' is not a flag of python -m training (did you mean 'epochs'?)" in out
    assert "'output-dir': the unit sets it: use torchrun_service_output_dir" in out
    assert "'shared_output_dir': the unit sets it: use torchrun_service_output_shared" in out
    assert "batch_size" not in out  # underscores are accepted, as the job does
    assert not list(tmp_path.glob("*.service"))  # nothing rendered: checked first, once


def test_valid_training_flags_pass_with_dashes_or_underscores(tmp_path):
    args = {"epochs": 2, "batch_size": 8, "image-size": 64, "amp": True, "lr-steps": [1]}
    units = _render_units(
        tmp_path, {"solo": {"ansible_host": "127.0.0.1"}}, torchrun_service_train_args=args
    )
    assert "--config /etc/ddp-train/train.yaml" in " ".join(_exec_start(units["solo"]))


# --- the project's wheel and the venv probe ------------------------------------------------------


@pytest.mark.slow
def test_the_project_wheel_is_the_same_bytes_on_every_build(tmp_path):
    play = [
        {
            "name": "Build the wheel twice",
            "hosts": "localhost",
            "connection": "local",
            "gather_facts": False,
            "tasks": [
                {
                    "name": f"Build {n}",
                    "ansible.builtin.include_role": {"name": "training_env", "tasks_from": "wheel"},
                    "vars": {"training_env_build_dir": f"{tmp_path}/build{n}"},
                }
                for n in (1, 2)
            ],
        }
    ]
    hosts = {"localhost": {"ansible_python_interpreter": sys.executable}}
    proc = _playbook(tmp_path, play, {"all": {"hosts": hosts}})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    wheels = [next((tmp_path / f"build{n}").glob("ddp_cluster-*.whl")) for n in (1, 2)]
    digests = {hashlib.sha256(w.read_bytes()).hexdigest() for w in wheels}
    assert len(digests) == 1
    names = zipfile.ZipFile(wheels[0]).namelist()
    assert "training/__main__.py" in names and "tree/__init__.py" in names
    assert not [n for n in names if "/tests/" in n]


def _probe(tmp_path: Path, requires: list[str], marker: str | None):
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        meta = "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n"
        meta += "".join(f"Requires-Dist: {r}\n" for r in requires)
        z.writestr("demo-1.0.dist-info/METADATA", meta)
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    marker_file = tmp_path / "marker"
    if marker is not None:
        marker_file.write_text((sha if marker == "match" else marker) + "\n")
    probe = ROLES / "training_env" / "files" / "probe.py"
    out = subprocess.run(
        [sys.executable, "-c", probe.read_text(), str(wheel), str(marker_file)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(out.stdout), sha


@pytest.mark.slow
def test_the_probe_reports_torch_requirements_and_the_installed_wheel(tmp_path):
    import torch

    report, sha = _probe(
        tmp_path,
        ["pip>=1", "surely-not-installed-package>=1", 'win-only; sys_platform == "win32"'],
        "match",
    )
    assert report["torch_version"] == torch.__version__
    assert report["torch_cuda"] == (torch.version.cuda or "cpu")
    assert report["errors"] == []
    assert report["deps_ok"] is False
    assert report["missing"] == ["surely-not-installed-package>=1 (have None)"]
    assert report["wheel_sha256"] == sha
    assert report["project_ok"] is True  # ddp-cluster is installed in this venv
    report, _ = _probe(tmp_path, ["pip>=1"], "another-wheel")
    assert report["deps_ok"] is True and report["project_ok"] is False


# --- the GPU check's diagnosis --------------------------------------------------------------------


def _gpu_check(tmp_path: Path, nvswitches: int, driver: str, fabricmanager: str = "inactive"):
    """Run training_env's torch check for a node whose torch (a CUDA 13.0 build) sees none of
    its 8 GPUs, and return the failure message."""
    probe = {
        "torch": "2.14.1",
        "torch_version": "2.14.1+cu130",
        "torch_cuda": "13.0",
        "cuda_available": False,
        "cuda_devices": 0,
    }
    play = [
        {
            "name": "Check torch against the GPUs",
            "hosts": "gpu-1",
            "connection": "local",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "Run the GPU check",
                    "ansible.builtin.include_role": {
                        "name": "training_env",
                        "tasks_from": "gpu_check",
                    },
                    "vars": {
                        "_training_env_probe": probe,
                        "_training_env_gpus": 8,
                        "_training_env_driver": driver,
                        "_training_env_nvswitches": nvswitches,
                        "_training_env_fabricmanager": fabricmanager,
                    },
                }
            ],
        }
    ]
    hosts = {"gpu-1": {"ansible_python_interpreter": sys.executable}}
    proc = _playbook(tmp_path, play, {"all": {"hosts": hosts}})
    assert proc.returncode != 0, proc.stdout
    out = " ".join((proc.stdout + proc.stderr).split())
    assert (
        "sees 0 GPU(s) with torch.cuda.is_available()=False, but nvidia-smi lists 8 GPU(s)" in out
    )
    return out


def test_torch_check_names_fabric_manager_on_an_nvswitch_node_with_a_new_enough_driver(tmp_path):
    out = _gpu_check(tmp_path, nvswitches=4, driver="580.65.06", fabricmanager="failed")
    assert "has 4 NVSwitch device(s) (HGX/DGX)" in out
    assert 'error 802, "system not yet initialized"' in out
    assert "nvidia-fabricmanager.service is failed" in out
    assert "Install a torch build for this driver" not in out  # the build is not blamed


def test_torch_check_blames_the_cuda_build_without_nvswitches_or_with_an_old_driver(tmp_path):
    for n, (nvswitches, driver) in enumerate([(0, "580.65.06"), (4, "570.172.08")]):
        (tmp_path / str(n)).mkdir()
        out = _gpu_check(tmp_path / str(n), nvswitches=nvswitches, driver=driver)
        assert "CUDA 13.0 builds need driver 580 or newer" in out
        assert "Install a torch build for this driver" in out
        assert "fabricmanager" not in out


# --- the torchrun wrapper ------------------------------------------------------------------------


def _wrapper(tmp_path: Path, worker_body: str, max_restarts: int = 0) -> subprocess.Popen:
    worker = tmp_path / "worker.py"
    worker.write_text(textwrap.dedent(worker_body))
    return subprocess.Popen(
        [
            sys.executable,
            str(ROLES / "torchrun_service" / "files" / "torchrun_service.py"),
            "--standalone",
            "--nnodes=1",
            "--nproc-per-node=1",
            f"--max-restarts={max_restarts}",
            "--monitor-interval=0.2",
            str(worker),
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**ENV, "TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"},
    )


@pytest.mark.slow
def test_a_stopped_job_ends_by_sigterm_which_systemd_counts_as_clean(tmp_path):
    proc = _wrapper(
        tmp_path,
        """
        import pathlib, signal, sys, time
        def stop(*_):
            pathlib.Path("checkpointed").touch()
            sys.exit(0)
        signal.signal(signal.SIGTERM, stop)
        pathlib.Path("started").touch()
        time.sleep(120)
        """,
    )
    deadline = time.time() + 120
    while not (tmp_path / "started").exists():
        assert proc.poll() is None and time.time() < deadline, proc.communicate()[0]
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGTERM, out
    assert (tmp_path / "checkpointed").exists(), out
    assert "torchrun stopped by SIGTERM" in out


@pytest.mark.slow
def test_a_user_mistake_exit_2_is_not_restarted_and_the_wrapper_exits_2(tmp_path):
    proc = _wrapper(
        tmp_path,
        """
        import pathlib, sys
        with open("starts", "a") as f:
            f.write("start\\n")
        print("error: --batch-size: must be at least 1", file=sys.stderr)
        sys.exit(2)
        """,
        max_restarts=3,
    )
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 2, out
    assert (tmp_path / "starts").read_text().count("start") == 1, out  # no torchrun restart
    assert "not restarting them (3 restarts left unused)" in out


@pytest.mark.slow
def test_a_crash_is_still_restarted_by_torchrun(tmp_path):
    proc = _wrapper(
        tmp_path,
        """
        import pathlib, sys
        with open("starts", "a") as f:
            f.write("start\\n")
        sys.exit(1 if len(pathlib.Path("starts").read_text().split()) < 2 else 0)
        """,
        max_restarts=1,
    )
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert (tmp_path / "starts").read_text().count("start") == 2, out


@pytest.mark.slow
def test_a_failed_job_keeps_torchruns_failure_status(tmp_path):
    proc = _wrapper(tmp_path, "raise SystemExit(3)\n")
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1, out
