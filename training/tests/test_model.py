"""The model: torchvision's RetinaNet on each backbone, local weights, SyncBatchNorm choices."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
import torch
from torchvision.models.detection import RetinaNet

from training.errors import UsageError
from training.model import BACKBONES, build_model, infer_architecture, load_weights
from training.recipe import make_lr_lambda, wrap_model


@pytest.mark.parametrize("backbone", BACKBONES)
def test_each_backbone_builds_retinanet_and_is_recognised_from_its_weights(backbone):
    model = build_model(backbone, num_classes=5, image_size=64)
    assert isinstance(model, RetinaNet)
    assert infer_architecture(model.state_dict()) == (backbone, 5)


def test_training_loss_reaches_every_parameter():
    """Why find_unused_parameters is not needed: every trainable tensor gets a gradient."""
    torch.manual_seed(0)
    model = build_model("resnet10", 3, 64).train()
    images = [torch.rand(3, 64, 64), torch.rand(3, 64, 48)]
    targets = [
        {"boxes": torch.tensor([[4.0, 4.0, 30.0, 30.0]]), "labels": torch.tensor([2])},
        {"boxes": torch.zeros((0, 4)), "labels": torch.zeros((0,), dtype=torch.int64)},
    ]
    sum(model(images, targets).values()).backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []


def test_weights_from_a_local_file_whole_model_or_bare_resnet(tmp_path):
    src = build_model("resnet18", 3, 64)
    torch.save({f"module.{k}": v for k, v in src.state_dict().items()}, tmp_path / "m.pt")
    dst = build_model("resnet18", 7, 64)  # another number of classes: the logits are skipped
    load_weights(dst, str(tmp_path / "m.pt"))
    w = "backbone.body.layer1.0.conv1.weight"
    assert torch.equal(dst.state_dict()[w], src.state_dict()[w])
    body = {k[len("backbone.body.") :]: v for k, v in src.state_dict().items() if "body" in k}
    torch.save(body, tmp_path / "resnet.pt")
    dst = build_model("resnet18", 3, 64)
    load_weights(dst, str(tmp_path / "resnet.pt"))
    assert torch.equal(dst.state_dict()[w], src.state_dict()[w])
    torch.save({"encoder.weight": torch.ones(3)}, tmp_path / "other.pt")
    with pytest.raises(UsageError, match="no tensor matches"):
        load_weights(dst, str(tmp_path / "other.pt"))


def test_sync_bn_is_skipped_on_cpu_and_warned_about_with_frozen_bn(process_group, caplog):
    info = SimpleNamespace(device=torch.device("cpu"), local_rank=0)
    args = SimpleNamespace(sync_bn=True, find_unused_parameters=False)
    with caplog.at_level(logging.INFO, logger="training"):
        ddp = wrap_model(build_model("resnet10", 3, 64), args, info)
    assert "SyncBatchNorm skipped: it works on GPUs only" in caplog.text
    assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in ddp.modules())
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="training"):
        wrap_model(build_model("resnet10", 3, 64, frozen_bn=True), args, info)
    assert "--sync-bn changes nothing: the model has no trainable BatchNorm" in caplog.text


def test_schedule_warmup_then_cosine_or_steps():
    args = SimpleNamespace(
        epochs=4, warmup_steps=10, lr_steps=None, lr_gamma=0.1, lr_schedule="cosine"
    )
    f = make_lr_lambda(args, steps_per_epoch=25)
    assert f(0) == pytest.approx(0.001) and f(10) == pytest.approx(1.0)
    assert f(55) == pytest.approx(0.5, abs=0.02) and f(100) == pytest.approx(0.0, abs=1e-6)
    args.lr_schedule = "step"
    f = make_lr_lambda(args, steps_per_epoch=25)  # drops at epochs 3 and 4 (2/3, 8/9 of 4)
    assert f(20) == 1.0 and f(75) == pytest.approx(0.1)
