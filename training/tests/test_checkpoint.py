"""Checkpoint files: atomic, weights_only-loadable, the last two kept, corruption detected."""

from __future__ import annotations

import os

import pytest
import torch

from training import checkpoint as ckpt


def _state(epoch: int) -> dict:
    return {
        "model": {"w": torch.full((64, 64), float(epoch))},
        "optimizer": {"state": {}, "param_groups": [{"lr": 0.1, "betas": (0.9, 0.999)}]},
        "lr_scheduler": {"last_epoch": epoch},
        "scaler": {},
        "epoch": epoch,
        "step": 0,
        "config": {"epochs": 3, "lr_steps": None},
        "rng": [ckpt.rng_state()],
    }


def test_save_keeps_the_last_two_and_loads_with_weights_only(tmp_path):
    for epoch in (1, 2, 3):
        ckpt.save_checkpoint(_state(epoch), str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.pt", "checkpoint_prev.pt"]
    state, path = ckpt.load_latest(str(tmp_path))
    assert path.endswith("checkpoint.pt") and state["epoch"] == 3
    assert torch.load(tmp_path / "checkpoint_prev.pt", weights_only=True)["epoch"] == 2
    ckpt.set_rng_state(state["rng"][0])


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage"])
def test_damaged_latest_falls_back_to_previous(tmp_path, caplog, damage):
    ckpt.save_checkpoint(_state(1), str(tmp_path))
    ckpt.save_checkpoint(_state(2), str(tmp_path))
    latest = tmp_path / "checkpoint.pt"
    data = bytearray(latest.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 3]
    elif damage == "flip":  # inside a tensor: torch.load alone does not notice
        data[len(data) // 2] ^= 0x40
    else:
        data = b"\0" * 100
    latest.write_bytes(bytes(data))
    with caplog.at_level("WARNING", logger="training"):
        state, path = ckpt.load_latest(str(tmp_path))
    assert state["epoch"] == 1 and path.endswith("checkpoint_prev.pt")
    assert "corrupt" in caplog.text and "using the previous checkpoint" in caplog.text


def test_no_readable_checkpoint_is_an_error_and_none_is_a_fresh_start(tmp_path):
    assert ckpt.load_latest(str(tmp_path)) is None
    (tmp_path / "checkpoint.pt").write_bytes(b"junk")
    with pytest.raises(ckpt.CheckpointError, match="no readable checkpoint.*--start-over"):
        ckpt.load_latest(str(tmp_path))


def test_atomic_save_leaves_no_temporary_file(tmp_path):
    ckpt.atomic_save({"a": torch.ones(3)}, str(tmp_path / "model_0.pt"))
    assert os.listdir(tmp_path) == ["model_0.pt"]
