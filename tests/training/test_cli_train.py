"""`flexip train`: config + overrides, resume, cache building, and clear errors (exit 2) at start."""

from __future__ import annotations

import yaml
from click.testing import CliRunner

from flexip.cli.main import main


def write_config(path, manifest, output_dir, **extra):
    config = {
        "data": {"manifest": str(manifest)},
        "optim": {"batch_size": 2, "max_steps": 2},
        "runtime": {"device": "cpu"},
        "logging": {"output_dir": str(output_dir), "tensorboard": False, "validate_every": 0, "log_every": 1},
        **extra,
    }
    path.write_text(yaml.safe_dump(config))
    return path


def test_train_resume_and_cache_from_the_command_line(tmp_path, write_dataset, reset_accelerate):
    manifest = write_dataset(tmp_path / "data", images=2, videos=2)
    config = write_config(tmp_path / "c.yaml", manifest, tmp_path / "out")
    runner = CliRunner()
    printed = runner.invoke(main, ["train", "--config", str(config), "optim.lr=2e-4", "--print-config"])
    assert printed.exit_code == 0, printed.output
    assert yaml.safe_load(printed.output)["optim"]["lr"] == 2e-4

    result = runner.invoke(main, ["train", "--config", str(config), "optim.max_steps=1"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "checkpoints" / "step-000001" / "adapter" / "flexip_adapter.safetensors").is_file()
    reset_accelerate()
    again = runner.invoke(main, ["train", "--config", str(config)])
    assert again.exit_code == 2 and "--resume latest" in again.output
    reset_accelerate()
    resumed = runner.invoke(main, ["train", "--config", str(config), "--resume", "latest"])
    assert resumed.exit_code == 0, resumed.output
    assert "resumed from" in resumed.output and "trained to step 2" in resumed.output
    reset_accelerate()
    cache = runner.invoke(main, ["train", "--config", str(config), f"cache.path={tmp_path / 'cache'}", "--build-cache"])
    assert cache.exit_code == 0, cache.output
    assert "cached 4 records" in cache.output and (tmp_path / "cache" / "index.json").is_file()


def test_bad_manifests_and_configs_fail_at_start(tmp_path):
    runner = CliRunner()
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    invalid = tmp_path / "invalid.jsonl"
    invalid.write_text('{"modality": "image", "image": "a.png"}\n{"modality": "sound"}\n')
    images_only = tmp_path / "images.jsonl"
    images_only.write_text('{"modality": "image", "image": "a.png", "caption": "x"}\n')
    cases = [
        (empty, [], "manifest is empty"),
        (invalid, [], "invalid.jsonl:2"),
        (tmp_path / "missing.jsonl", [], "manifest not found"),
        (images_only, [], "no video records"),
        (images_only, ["optim.lr=-1"], "optim.lr must be > 0"),
        (images_only, ["optim.rate=1"], "unknown config key optim.rate"),
    ]
    for manifest, overrides, message in cases:
        config = write_config(tmp_path / "c.yaml", manifest, tmp_path / "out")
        result = runner.invoke(main, ["train", "--config", str(config), *overrides])
        assert result.exit_code == 2, (message, result.output)
        assert message in result.output and "Traceback" not in result.output
    missing = runner.invoke(main, ["train"])
    assert missing.exit_code == 2 and "--config" in missing.output
    help_text = runner.invoke(main, ["train", "--help"]).output
    assert "--resume" in help_text and "KEY=VALUE" in help_text and "accelerate launch" in help_text
