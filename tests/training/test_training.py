"""Training runs on the tiny-random stack and a small dataset written by the test (PNGs and real mp4s)."""

from __future__ import annotations

import logging

import pytest
import torch
from safetensors.torch import load_file

from flexip.errors import CheckpointError, FlexIPInputError
from flexip.training import checkpointing as ckpt
from flexip.training.trainer import Trainer


def test_loss_goes_down_when_overfitting(tmp_path, write_dataset, make_config):
    manifest = write_dataset(tmp_path / "data", images=2, videos=2)
    config = make_config(
        manifest, tmp_path / "out", optim={"max_steps": 40, "lr": 3e-3, "grad_clip": None}, dropout={"text": 0.0, "image": 0.0, "both": 0.0}
    )
    trainer = Trainer(config)
    batch = next(trainer.stream)
    trainer.stream.load_state_dict({"epoch": 0, "position": 0})  # train from the first batch on
    features = trainer.features(batch)
    assert sorted(set(features.modalities)) == ["image", "video"]
    before = sum(trainer.evaluation_loss(features, seed) for seed in range(4)) / 4
    frozen = {name: p.clone() for name, p in trainer.components["unet"].named_parameters()}
    result = trainer.train()
    after = sum(trainer.evaluation_loss(features, seed) for seed in range(4)) / 4
    print(f"overfit: evaluation loss {before:.4f} → {after:.4f}; first steps {result.losses[:3]}, last {result.losses[-3:]}")
    assert after < 0.9 * before
    assert sum(result.losses[-10:]) < sum(result.losses[:10])
    # only the adapter trained: the UNet is bit-identical, and nothing else is in the optimizer
    assert all(torch.equal(p, frozen[name]) for name, p in trainer.components["unet"].named_parameters())
    optimized = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert optimized == {id(p) for p in trainer.adapter.parameters()}
    assert not any(
        p.requires_grad for key in ("unet", "vae", "text_encoder", "image_encoder", "dino_encoder") for p in trainer.components[key].parameters()
    )


class Killed(Exception):
    pass


def test_resume_after_a_kill_is_exact(tmp_path, write_dataset, make_config, reset_accelerate):
    manifest = write_dataset(tmp_path / "data")
    settings = dict(
        optim={"max_steps": 6, "grad_accum": 2, "lr_schedule": "cosine", "warmup_steps": 2},
        runtime={"ema_decay": 0.9},
        logging={"checkpoint_every": 3, "keep_checkpoints": 1},
    )
    straight = Trainer(make_config(manifest, tmp_path / "straight", **settings)).train()
    reset_accelerate()

    def kill_at_step_4(step, trainer):
        if step == 4:
            raise Killed  # after step 4, before the step-6 checkpoint: steps 4 is lost

    with pytest.raises(Killed):
        Trainer(make_config(manifest, tmp_path / "resumed", **settings)).train(on_step_end=kill_at_step_4)
    reset_accelerate()
    leftover = ckpt.checkpoints_root(tmp_path / "resumed") / "step-000005.tmp"
    leftover.mkdir()  # as if killed while writing a checkpoint
    with pytest.raises(FlexIPInputError, match="--resume latest"):
        Trainer(make_config(manifest, tmp_path / "resumed", **settings))  # never silently restart over checkpoints
    reset_accelerate()
    trainer = Trainer(make_config(manifest, tmp_path / "resumed", **settings), resume="latest")
    assert trainer.step == 3
    resumed = trainer.train()
    assert not leftover.exists()
    assert resumed.losses == straight.losses[3:]
    for name in ("adapter/flexip_adapter.safetensors", "training_state/adapter.safetensors", "training_state/ema.safetensors"):
        a, b = load_file(straight.checkpoint / name), load_file(resumed.checkpoint / name)
        assert a.keys() == b.keys()
        assert max((a[k].float() - b[k].float()).abs().max().item() for k in a) <= 1e-6
    assert [p.name for _, p in ckpt.list_checkpoints(tmp_path / "resumed")] == ["step-000006"]  # keep_checkpoints=1
    state = ckpt.load_trainer_state(resumed.checkpoint)
    assert state["step"] == 6 and state["ema"] is True


def test_bad_files_are_skipped_and_counted(tmp_path, caplog, write_dataset, make_config):
    manifest = write_dataset(tmp_path / "data", images=2, videos=2, corrupt=True, short_video=True)
    config = make_config(manifest, tmp_path / "out", optim={"max_steps": 4}, logging={"log_every": 2}, data={"mix": {"image": 0.5, "video": 0.5}})
    with caplog.at_level(logging.INFO, logger="flexip"):
        result = Trainer(config).train()
    assert result.step == 4
    assert result.skipped["corrupt_image"] >= 1 and result.skipped["video_too_short"] >= 1
    assert set(result.skipped) <= {"corrupt_image", "video_too_short"}
    expected = f"corrupt_image={result.skipped['corrupt_image']} video_too_short={result.skipped['video_too_short']}"
    assert f"skipped: {expected}" in caplog.text
    log_file = (tmp_path / "out" / "train.log").read_text()
    assert f"skipped: {expected}" in log_file and "broken.png" in log_file and "short.mp4" in log_file
    assert ckpt.load_trainer_state(result.checkpoint)["skipped"] == dict(result.skipped)


def test_checkpoint_loads_in_the_pipeline_and_generates(tmp_path, write_dataset, make_config):
    from flexip.models.adapter import FlexIPAdapter
    from flexip.pipelines import FlexIPPipeline

    manifest = write_dataset(tmp_path / "data", images=2, videos=2)
    config = make_config(
        manifest,
        tmp_path / "out",
        optim={"max_steps": 2},
        logging={
            "validate_every": 2,
            "validation_steps": 2,
            "validation_gammas": [0.0, 1.0],
            "tensorboard": True,
            "log_every": 1,
        },
    )
    trainer = Trainer(config)
    initial = {k: v.clone() for k, v in trainer.adapter.state_dict().items()}
    result = trainer.train()
    adapter_dir = result.checkpoint / "adapter"
    trained = FlexIPAdapter.from_pretrained(adapter_dir)
    assert any(not torch.equal(trained.state_dict()[k], initial[k]) for k in initial)
    pipe = FlexIPPipeline.from_pretrained("tiny-random", adapter=str(adapter_dir))
    pipe.set_progress_bar_config(disable=True)
    reference = trainer.validation_cases[0].reference
    output = pipe(
        "a blob number 0",
        reference_images=reference,
        gamma=[0.2, 0.8],
        num_inference_steps=2,
        generator=torch.Generator().manual_seed(0),
        height=16,
        width=16,
    )
    assert len(output.images) == 2 and output.images[0].size == (16, 16)
    # the final adapter, the validation grid (PNG) and TensorBoard events are there too
    assert FlexIPAdapter.from_pretrained(result.adapter_dir).config.target_layers == trained.config.target_layers
    assert (tmp_path / "out" / "validation" / "step-000002.png").is_file()
    assert list((tmp_path / "out" / "logs").rglob("events.out.tfevents.*"))
    assert (result.checkpoint / "config.yaml").read_text() == config.to_yaml()


def test_gradient_checkpointing_and_bf16_train_the_same_adapter(tmp_path, write_dataset, make_config, reset_accelerate):
    manifest = write_dataset(tmp_path / "data", images=2, videos=2)
    weights = {}
    for name, runtime in (("plain", {}), ("checkpointing", {"gradient_checkpointing": True}), ("bf16", {"mixed_precision": "bf16"})):
        trainer = Trainer(make_config(manifest, tmp_path / name, optim={"max_steps": 2}, runtime=runtime))
        trainer.train()
        weights[name] = {k: v.clone() for k, v in trainer.adapter.state_dict().items()}
        assert all(p.dtype == torch.float32 for p in trainer.adapter.parameters())  # the adapter trains in float32
        reset_accelerate()
    difference = {
        name: max((weights[name][k] - weights["plain"][k]).abs().max().item() for k in weights["plain"]) for name in ("checkpointing", "bf16")
    }
    assert difference["checkpointing"] == 0.0  # recomputation gives the very same gradients
    assert 0.0 < difference["bf16"] < 0.02  # bf16 frozen models: close, not equal


def test_subject_loss_weight_counts_the_subject_more(tmp_path, write_dataset, make_config):
    from flexip.training.objective import per_sample_mse

    # the weighted mean: uniform weights change nothing, a weight map moves the loss toward the weighted region
    prediction, target = torch.zeros(2, 4, 8, 8), torch.zeros(2, 4, 8, 8)
    prediction[:, :, :4] = 1.0  # error 1 on the top half only
    top = torch.zeros(2, 1, 8, 8)
    top[:, :, :4] = 1.0
    assert torch.allclose(per_sample_mse(prediction, target, torch.full((2, 1, 8, 8), 3.0)), per_sample_mse(prediction, target))
    assert torch.allclose(per_sample_mse(prediction, target, 1.0 + 3.0 * top), torch.full((2,), 4 * 32 / (4 * 32 + 32)))

    manifest = write_dataset(tmp_path / "data", images=2, videos=2, masks=True)
    plain = Trainer(make_config(manifest, tmp_path / "plain"))
    batch = next(plain.stream)
    features = plain.features(batch)
    masks = features.subject_masks
    assert masks.shape == (4, 1, *features.latents.shape[2:]) and masks.min() >= 0 and masks.max() <= 1
    for row, modality in enumerate(features.modalities):  # the subject covers part of every target, images and clips
        assert 0.1 < float(masks[row].mean()) < 0.7, (modality, float(masks[row].mean()))
    weighted = Trainer(make_config(manifest, tmp_path / "weighted", optim={"subject_loss_weight": 4.0}))
    weighted.adapter.load_state_dict(plain.adapter.state_dict())
    same, _ = plain.compute_loss(features, torch.Generator().manual_seed(0))
    other, _ = weighted.compute_loss(features, torch.Generator().manual_seed(0))
    assert not torch.allclose(same, other)  # same draws, the subject weighted 5×
    no_masks = plain.features({**batch, "target_mask": [None] * len(batch["target"])})
    assert torch.equal(no_masks.subject_masks, torch.zeros_like(masks))
    assert torch.allclose(*(t.compute_loss(no_masks, torch.Generator().manual_seed(0))[0] for t in (plain, weighted)))
    with pytest.raises(FlexIPInputError, match="subject_loss_weight"):
        make_config(manifest, tmp_path / "bad", optim={"subject_loss_weight": -1.0})


def test_personalization_init_zero_starts_the_branch_silent_and_training_moves_it(tmp_path, write_dataset, make_config, reset_accelerate):
    manifest = write_dataset(tmp_path / "data", images=2, videos=2)
    values = lambda trainer: [trainer.adapter.layer(n).to_v_pers.weight.detach().clone() for n in trainer.adapter.target_layers]
    copied = Trainer(make_config(manifest, tmp_path / "copy"))
    assert all(v.abs().sum() > 0 for v in values(copied))  # SPEC §1: a copy of the text V
    reset_accelerate()
    silent = Trainer(make_config(manifest, tmp_path / "zero", model={"base": "tiny-random", "personalization_init": "zero"}))
    assert all(not v.any() for v in values(silent))
    silent.train()
    assert any(v.abs().sum() > 0 for v in values(silent))  # gradients reach V'_pers from zero


def test_personalization_lr_scale_zero_freezes_only_the_personalization_branch(tmp_path, write_dataset, make_config, reset_accelerate):
    from flexip.training.runtime import is_personalization_parameter, parameter_groups

    manifest = write_dataset(tmp_path / "data", images=2, videos=2)
    trainer = Trainer(make_config(manifest, tmp_path / "frozen", optim={"personalization_lr_scale": 0.0}))
    names = [n for n, _ in trainer.adapter.named_parameters()]
    pers = [n for n in names if is_personalization_parameter(n)]
    assert any(n.startswith("personalization.") for n in pers) and any(n.endswith("to_v_pers.weight") for n in pers)
    assert not any(n.startswith("preservation.") or n.endswith("to_v_pres.weight") for n in pers)
    assert [g["lr_scale"] for g in trainer.optimizer.param_groups] == [1.0, 0.0]
    assert len(parameter_groups(trainer.adapter)) == 1  # the default: one group, as before the option existed
    before = {n: p.detach().clone() for n, p in trainer.adapter.named_parameters()}
    trainer.train()
    after = dict(trainer.adapter.named_parameters())
    assert all(torch.equal(before[n], after[n]) for n in pers)  # lr × 0: not even weight decay moves them
    assert any(not torch.equal(before[n], after[n]) for n in names if n not in pers)
    assert len(trainer.optimizer.param_groups[1]["params"]) == len(pers)


def test_resume_takes_the_configs_personalization_lr_scale(tmp_path, write_dataset, make_config, reset_accelerate):
    manifest = write_dataset(tmp_path / "data", images=2, videos=2)
    run = tmp_path / "run"
    Trainer(make_config(manifest, run, optim={"personalization_lr_scale": 0.5, "max_steps": 2})).train()
    reset_accelerate()
    resumed = Trainer(make_config(manifest, run, optim={"personalization_lr_scale": 0.25, "max_steps": 3}), resume="latest")
    assert resumed.step == 2 and [g["lr_scale"] for g in resumed.optimizer.param_groups] == [1.0, 0.25]
    reset_accelerate()
    with pytest.raises(CheckpointError, match="not to or from 1"):
        Trainer(make_config(manifest, run, optim={"max_steps": 3}), resume="latest")


def test_time_limit_ends_at_a_resumable_step_and_the_loss_curve_spans_sittings(tmp_path, write_dataset, make_config, reset_accelerate):
    from flexip.training import Trainer

    manifest = write_dataset(tmp_path / "data")
    config = make_config(manifest, tmp_path / "run", logging={"log_every": 1, "checkpoint_every": 1000})
    first = Trainer(config).train(time_limit=0.0)  # out of time after the first step: it is treated as the last
    assert first.step == 1 and first.checkpoint is not None and (first.adapter_dir / "config.json").is_file()
    reset_accelerate()
    second = Trainer(config, resume="latest").train()
    assert second.step == config.optim.max_steps
    assert [step for step, _ in second.loss_curve] == [1, 2, 3, 4] and second.loss_curve[0] == first.loss_curve[0]


def test_resume_latest_passes_over_a_damaged_checkpoint_and_continues(tmp_path, write_dataset, make_config, reset_accelerate, caplog):
    manifest = write_dataset(tmp_path / "data")
    settings = dict(optim={"max_steps": 4}, logging={"checkpoint_every": 1, "keep_checkpoints": 3})
    straight = Trainer(make_config(manifest, tmp_path / "straight", **settings)).train()
    reset_accelerate()
    config = make_config(manifest, tmp_path / "damaged", **{**settings, "optim": {"max_steps": 3}})
    Trainer(config).train()
    reset_accelerate()
    newest = ckpt.checkpoints_root(tmp_path / "damaged") / "step-000003"
    (newest / "adapter" / "flexip_adapter.safetensors").write_bytes(b"")  # e.g. the disk filled up
    with caplog.at_level("WARNING", logger="flexip"):
        trainer = Trainer(make_config(manifest, tmp_path / "damaged", **settings), resume="latest")
    assert trainer.step == 2
    assert "skipping damaged checkpoint step-000003" in caplog.text and "resuming from step-000002" in caplog.text
    resumed = trainer.train()
    a, b = (
        load_file(straight.checkpoint / "adapter/flexip_adapter.safetensors"),
        load_file(resumed.checkpoint / "adapter/flexip_adapter.safetensors"),
    )
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert ckpt.checkpoint_problem(resumed.checkpoint.with_name("step-000003")) is None  # rewritten whole
