"""`--config FILE.yaml`: keys are flag names (dashes or underscores); command-line flags win."""

from __future__ import annotations

import pytest

from training.config import get_args_parser, parse_args, resolve_defaults


def test_yaml_keys_with_dashes_or_underscores_and_cli_wins(tmp_path):
    cfg = tmp_path / "job.yaml"
    cfg.write_text(
        "epochs: 7\nbatch-size: 32\noutput_dir: /data/run\namp: true\nlr-steps: [4, 6]\n"
        "optimizer: sgd\n"
    )
    args = parse_args(get_args_parser(), ["--config", str(cfg), "--epochs", "9"])
    assert args.epochs == 9  # the command line wins
    assert args.batch_size == 32 and args.output_dir == "/data/run"
    assert args.amp is True and args.lr_steps == [4, 6] and args.optimizer == "sgd"
    assert args.resume == "auto"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("optimizer: adam\n", "optimizer must be one of adamw, sgd"),
        ("epochs: three\n", "epochs: 'three' is not an integer (--epochs)"),
        ("batch-size: 0\n", "batch-size: must be at least 1, got 0 (--batch-size)"),
        ("epoch: 3\n", "unknown key 'epoch' (did you mean epochs?)"),
        ("amp: 1\n", "amp must be true or false"),
        ("- 1\n", "expected a mapping"),
    ],
)
def test_bad_config_names_the_file_and_key(tmp_path, capsys, text, message):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    with pytest.raises(SystemExit):
        parse_args(get_args_parser(), ["--config", str(cfg)])
    err = capsys.readouterr().err
    assert str(cfg) in err and message in err


def test_device_defaults_small_on_cpu_larger_on_gpus():
    cpu = parse_args(get_args_parser(), [])
    resolve_defaults(cpu, "cpu", 2)
    assert (cpu.backbone, cpu.image_size, cpu.batch_size) == ("resnet10", 128, 16)
    assert cpu.lr == 2e-3
    gpu = parse_args(get_args_parser(), ["--optimizer", "sgd", "--image-size", "320"])
    resolve_defaults(gpu, "cuda", 8)
    assert (gpu.backbone, gpu.image_size, gpu.batch_size) == ("resnet50", 320, 128)
    assert gpu.lr == 0.01
