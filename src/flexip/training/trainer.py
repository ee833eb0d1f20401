"""The training loop: modality-aware gate, condition dropout, the base model's objective, on accelerate.

    trainer = Trainer(load_config("configs/train_tiny.yaml"), resume="latest")
    result = trainer.train()            # → checkpoints, OUTPUT_DIR/adapter, TensorBoard logs

One optimizer step = `grad_accum` micro-batches; for each one:
    1. next batch (on the fly: PIL samples → frozen encoders; or from the feature cache)
    2. from a generator derived from (seed, step, micro-batch, process): timesteps t, noise ε,
       per-sample γ from the modality's range, condition dropout masks
    3. x_t = noise(x_0, ε, t); prediction = UNet(x_t, t, T | C_pres, C_pers, γ); MSE to ε (or v)
Only the adapter trains. Because every random draw is a function of the step, a resumed run needs only
the weights, optimizer (and EMA) state, the step and the data position: it continues bit for bit.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections import Counter
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch

from flexip.data import ModalityMixSampler, collate_samples
from flexip.errors import CheckpointError, FlexIPError, FlexIPInputError
from flexip.models.adapter import WEIGHTS_NAME
from flexip.models.ip_adapter_plus import WEIGHTS_NAME as IP_WEIGHTS_NAME
from flexip.training import checkpointing as ckpt
from flexip.training.batches import BatchStream, epoch_draws
from flexip.training.components import (
    build_adapter,
    cache_signature,
    check_resolution,
    data_signature,
    load_dataset,
    load_frozen_components,
    native_resolution,
    place_components,
)
from flexip.training.config import TrainConfig, flexip_only_settings
from flexip.training.ema import EMA
from flexip.training.features import FeatureEncoder, Features, added_conditions
from flexip.training.gate_sampling import apply_dropout, sample_dropout, sample_gammas
from flexip.training.model import FlexIPTrainingModel, IPAdapterTrainingModel
from flexip.training.objective import add_noise, noise_schedule, per_sample_mse, prediction_target, sample_timesteps
from flexip.training.runtime import flat_hparams, learning_rate, log_file, make_accelerator, parameter_groups
from flexip.training.tracking import RunningStats, format_skips, reduce_skips, step_generator

logger = logging.getLogger("flexip.training")


@dataclass
class TrainResult:
    step: int
    adapter_dir: Path  # OUTPUT_DIR/adapter: the final adapter (EMA weights when EMA is on)
    checkpoint: Path | None
    skipped: Counter
    losses: list[float] = field(default_factory=list)  # mean loss of each step of this call (this process)
    loss_curve: list[list[float]] = field(default_factory=list)  # [step, logged mean loss] over every sitting of the run
    samples_per_second: float = 0.0


class Trainer:
    def __init__(self, config: TrainConfig, resume: str | None = None):
        self.config = cfg = config
        # 1. data first, so that a bad manifest fails before anything else loads
        self.dataset = load_dataset(config)
        self.accelerator = accelerator = make_accelerator(config)
        self.output_dir = config.output_dir
        checkpoint = self._checkpoint_to_resume(resume)
        # 2. frozen components, the adapter, the objective
        self.components = load_frozen_components(cfg.model)
        self.is_ip_adapter = cfg.model.method == "ip-adapter"
        adapter = build_adapter(cfg.model, self.components, cfg.runtime.seed)
        # the IP-Adapter baseline and a FlexIP adapter warm-started from IP-Adapter Plus read the CLIP hidden states
        self.reads_clip_tokens = self.is_ip_adapter or adapter.reads_clip_tokens
        dino_layer = -1 if self.is_ip_adapter else adapter.config.dino_layer
        self.weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(cfg.runtime.mixed_precision, torch.float32)
        place_components(self.components, accelerator.device, self.weight_dtype)
        self.resolution = cfg.data.resolution or native_resolution(self.components)
        check_resolution(self.resolution, self.components)
        if cfg.runtime.gradient_checkpointing:
            self.components["unet"].enable_gradient_checkpointing()
        alphas_cumprod, self.prediction_type = noise_schedule(self.components["scheduler"].config)
        self.alphas_cumprod = alphas_cumprod.to(accelerator.device)
        self.encoder = FeatureEncoder(self.components, self.resolution, dino_layer, clip_hidden_layer=-2 if self.reads_clip_tokens else None)
        self.empty_text, empty_pooled = self.encoder.encode_prompts([""])  # (1, seq, dim): a dropped caption
        self.empty_image_tokens = self.encoder.empty_image_tokens().float() if self.is_ip_adapter else None  # a dropped reference
        self.empty_text = self.empty_text.float()
        self.empty_pooled = None if empty_pooled is None else empty_pooled.float()  # SDXL's pooled text of a dropped caption
        # 3. batches: encoded on the fly, or read from the feature cache
        self.stream = self._batch_stream(dino_layer)
        # 4. the trainable model and its optimizer (only the adapter's parameters)
        optimizer = torch.optim.AdamW(
            parameter_groups(adapter, 1.0 if self.is_ip_adapter else cfg.optim.personalization_lr_scale),
            lr=cfg.optim.lr,
            betas=cfg.optim.betas,
            weight_decay=cfg.optim.weight_decay,
        )
        model_class = IPAdapterTrainingModel if self.is_ip_adapter else FlexIPTrainingModel
        self.model, self.optimizer = accelerator.prepare(model_class(self.components["unet"], adapter), optimizer)
        self.adapter = accelerator.unwrap_model(self.model).adapter
        self.ema = EMA(self.adapter, cfg.runtime.ema_decay) if cfg.runtime.ema_decay else None
        self.step, self.skipped, self._pending_skips, self.stats = 0, Counter(), Counter(), RunningStats()
        self.loss_curve: list[list[float]] = []  # [step, mean loss] at every log, kept in the checkpoints
        if checkpoint is not None:
            self._load_checkpoint(checkpoint)
        self.validation_cases = None
        ignored = flexip_only_settings(cfg) if self.is_ip_adapter else []
        if ignored:
            self._warning("model.method ip-adapter trains at one scale without a gate or personalization branch; ignored: %s", ", ".join(ignored))

    # ---- setup helpers ----------------------------------------------------------------------------
    def _info(self, message: str, *args) -> None:
        if self.accelerator.is_main_process:  # one log line per run, not per process
            logger.info(message, *args)

    def _warning(self, message: str, *args) -> None:
        if self.accelerator.is_main_process:
            logger.warning(message, *args)

    def _checkpoint_to_resume(self, resume: str | None) -> Path | None:
        if resume is None:
            if ckpt.list_checkpoints(self.output_dir):
                raise FlexIPInputError(
                    f"{self.output_dir} already holds checkpoints; pass --resume latest to continue, or choose another logging.output_dir"
                )
            return None
        checkpoint = ckpt.resolve_resume(self.output_dir, resume, warn=lambda message: self._warning("%s", message))
        if checkpoint is None:
            self._info("no checkpoint in %s yet: starting from scratch", self.output_dir)
        return checkpoint

    def _batch_stream(self, dino_layer: int) -> BatchStream:
        cfg, accelerator = self.config, self.accelerator
        if cfg.cache.path is not None:
            from flexip.training.cache import CachedFeatureDataset, collate_features

            dataset = CachedFeatureDataset(cfg.cache.path)
            dataset.check_matches(cache_signature(cfg, self.resolution, dino_layer), data_signature(cfg))
            collate = collate_features
            if dataset.index["skipped"]:
                self._info("feature cache %s left out records: %s", cfg.cache.path, format_skips(Counter(dataset.index["skipped"])))
        else:
            dataset, collate = self.dataset, collate_samples
        sampler = ModalityMixSampler(
            dataset.records,
            cfg.data.mix,
            seed=cfg.runtime.seed,
            num_replicas=accelerator.num_processes,
            rank=accelerator.process_index,
            num_samples=epoch_draws(len(dataset), cfg.optim.batch_size, accelerator.num_processes),
        )
        return BatchStream(dataset, sampler, cfg.optim.batch_size, collate, cfg.data.num_workers)

    # ---- one step -----------------------------------------------------------------------------------
    def features(self, batch: dict) -> Features:
        if "latents" in batch:  # from the feature cache
            from flexip.training.cache import features_from_cached

            features = features_from_cached(batch)
        else:
            features = self.encoder(batch)
        return features.to(device=self.accelerator.device, dtype=torch.float32)

    def compute_loss(self, features: Features, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(per-sample loss (batch,), γ (batch,)) for one micro-batch; every draw comes from `generator`."""
        cfg, device, batch = self.config, self.accelerator.device, len(features)
        noise = torch.randn(features.latents.shape, generator=generator).to(device)
        timesteps = sample_timesteps(batch, len(self.alphas_cumprod), generator).to(device)
        gammas = sample_gammas(features.modalities, cfg.gate.ranges(), generator)
        masks = sample_dropout(batch, cfg.dropout.text, cfg.dropout.image, cfg.dropout.both, generator)
        text, clip, dino = apply_dropout(masks, features.text_embeds, self.empty_text, features.clip_embeds, features.dino_tokens)
        noisy = add_noise(self.alphas_cumprod, features.latents, noise, timesteps)
        target = prediction_target(self.prediction_type, self.alphas_cumprod, features.latents, noise, timesteps)
        extra = added_conditions(features, self.empty_pooled, masks.drop_text, self.resolution)  # SDXL's pooled text and time ids
        tokens = features.clip_tokens
        if tokens is not None:  # a dropped reference: as each method's pipeline encodes "no image"
            dropped = masks.drop_image.to(device).view(-1, 1, 1)
            # IP-Adapter: the encoded zero image (diffusers' unconditional); FlexIP: zero features (ReferenceEmbeds.zeros_like)
            empty = self.empty_image_tokens.to(tokens) if self.empty_image_tokens is not None else torch.zeros_like(tokens)
            tokens = torch.where(dropped, empty.expand_as(tokens), tokens)
        prediction = self.model(noisy, timesteps, text, clip, dino, gammas, extra, clip_tokens=tokens)
        weights = None
        if cfg.optim.subject_loss_weight > 0 and features.subject_masks is not None:
            weights = 1.0 + cfg.optim.subject_loss_weight * features.subject_masks
        return per_sample_mse(prediction, target, weights), gammas

    def training_step(self) -> float:
        cfg, accelerator = self.config, self.accelerator
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(self.step, cfg.optim) * group.get("lr_scale", 1.0)
        losses = []
        for micro in range(cfg.optim.grad_accum):
            batch = next(self.stream)
            self._pending_skips.update(batch["skipped"])
            features = self.features(batch)
            last = micro == cfg.optim.grad_accum - 1
            with nullcontext() if last else accelerator.no_sync(self.model):
                per_sample, gammas = self.compute_loss(features, step_generator(cfg.runtime.seed, self.step, micro, accelerator.process_index))
                accelerator.backward(per_sample.mean() / cfg.optim.grad_accum)
            self.stats.add(per_sample, gammas, features.modalities)
            losses.append(float(per_sample.detach().mean()))
        if not all(math.isfinite(loss) for loss in losses):
            raise FlexIPError(
                f"the training loss became {losses} at step {self.step + 1}: stopped before the update, no checkpoint written. Likely "
                "causes: a learning rate too high for this model, fp16 overflow (try runtime.mixed_precision=bf16), or damaged "
                "inputs; resume from the last checkpoint with a lower optim.lr"
            )
        if cfg.optim.grad_clip is not None:
            accelerator.clip_grad_norm_(self.adapter.parameters(), cfg.optim.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update(self.adapter)
        self.step += 1
        return sum(losses) / len(losses)

    @torch.no_grad()
    def evaluation_loss(self, features: Features, seed: int = 0) -> float:
        """Mean loss on fixed features with fixed draws (no update): for overfitting checks."""
        per_sample, _ = self.compute_loss(features, step_generator(seed, -1, 0, 0))
        return float(per_sample.mean())

    # ---- the loop -----------------------------------------------------------------------------------
    def train(self, on_step_end=None, time_limit: float | None = None) -> TrainResult:
        """Run until `optim.max_steps`. `on_step_end(step, trainer)` is called after every step. With
        `time_limit` (seconds of this call), the run ends early at the first step past it, as if that step
        were the last: checkpoint and adapter written, `--resume latest` continues from there."""
        from tqdm.auto import tqdm
        from tqdm.contrib.logging import logging_redirect_tqdm

        cfg, accelerator = self.config, self.accelerator
        if accelerator.is_main_process:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            cfg.save(self.output_dir / "config.yaml")
            removed = ckpt.remove_partial(self.output_dir)
            if removed:
                self._info("removed unfinished checkpoint writes: %s", ", ".join(p.name for p in removed))
        if cfg.logging.tensorboard:
            accelerator.init_trackers("tensorboard", config=flat_hparams(cfg.to_dict()))
        result = TrainResult(self.step, self.output_dir / "adapter", ckpt.latest_checkpoint(self.output_dir), self.skipped)
        start_step, started = self.step, time.perf_counter()
        show_bar = accelerator.is_local_main_process and cfg.logging.progress_bar
        bar = tqdm(total=cfg.optim.max_steps, initial=self.step, desc="train", disable=not show_bar)
        with logging_redirect_tqdm(), log_file(self.output_dir / "train.log" if accelerator.is_main_process else None):
            self._info(
                "training %s → %s: %d parameters train, from step %d to %d, %d process(es) on %s",
                cfg.model.base,
                self.output_dir,
                sum(p.numel() for p in self.adapter.parameters()),
                self.step,
                cfg.optim.max_steps,
                accelerator.num_processes,
                accelerator.device,
            )
            while self.step < cfg.optim.max_steps:
                loss = self.training_step()
                result.losses.append(loss)
                bar.update()
                bar.set_postfix(loss=f"{loss:.4f}")
                last = self.step == cfg.optim.max_steps or (time_limit is not None and time.perf_counter() - started >= time_limit)
                if self.step % cfg.logging.log_every == 0 or last:
                    self.log()
                if cfg.logging.validate_every and (self.step % cfg.logging.validate_every == 0 or last):
                    self.validate()
                if self.step % cfg.logging.checkpoint_every == 0 or last:
                    result.checkpoint = self.save_checkpoint()
                if on_step_end is not None:
                    on_step_end(self.step, self)
                if last:
                    break
            bar.close()
            elapsed = time.perf_counter() - started
            samples = (self.step - start_step) * cfg.optim.batch_size * cfg.optim.grad_accum * accelerator.num_processes
            result.samples_per_second = samples / elapsed if elapsed > 0 else 0.0
            if accelerator.is_main_process and result.checkpoint is not None:
                self.release_adapter().save_pretrained(result.adapter_dir)
            self._info(
                "done: step %d, %.1f samples/s, skipped: %s; adapter: %s",
                self.step,
                result.samples_per_second,
                format_skips(self.skipped),
                result.adapter_dir,
            )
        accelerator.wait_for_everyone()
        accelerator.end_training()
        result.step, result.skipped, result.loss_curve = self.step, Counter(self.skipped), [list(p) for p in self.loss_curve]
        return result

    def log(self) -> None:
        """Scalars (loss per modality, learning rate), γ histograms, and a log line with skip counts."""
        accelerator = self.accelerator
        self.skipped.update(reduce_skips(self._pending_skips, accelerator))
        self._pending_skips.clear()
        values = self.stats.reduced(accelerator)
        values["lr"] = self.optimizer.param_groups[0]["lr"]
        values.update({f"skipped/{reason}": count for reason, count in self.skipped.items()})
        if self.config.logging.tensorboard:
            accelerator.log(values, step=self.step)
            if accelerator.is_main_process:
                writer = accelerator.get_tracker("tensorboard", unwrap=True)
                for modality, gammas in self.stats.gamma_values().items():
                    writer.add_histogram(f"gamma/{modality}", gammas, self.step)
        if "loss" in values:
            self.loss_curve.append([self.step, values["loss"]])
        losses = " ".join(f"{key.split('/')[-1]} {value:.4f}" for key, value in values.items() if key.startswith("loss"))
        self._info("step %d: %s, lr %.3g, skipped: %s", self.step, losses, values["lr"], format_skips(self.skipped))
        self.stats.reset()

    def validate(self) -> Path | None:
        """Render the validation grid (main process) with the weights a checkpoint would ship."""
        from flexip.training.validation import validate

        if self.is_ip_adapter:
            return None  # the validation grid is a γ sweep of FlexIPPipeline; evaluate an IP-Adapter with `flexip miniworld evaluate`
        return validate(self)

    # ---- checkpoints --------------------------------------------------------------------------------
    def release_adapter(self):
        """The adapter as it ships: the EMA weights when EMA is on (a copy), else the trained adapter."""
        if self.ema is None:
            return self.adapter
        released = copy.deepcopy(self.adapter)
        released.load_state_dict(self.ema.weights(self.adapter))
        return released

    def save_checkpoint(self) -> Path:
        accelerator = self.accelerator
        self.skipped.update(reduce_skips(self._pending_skips, accelerator))
        self._pending_skips.clear()
        bad = [name for name, parameter in self.adapter.named_parameters() if not torch.isfinite(parameter).all()]
        if bad:
            raise FlexIPError(
                f"the adapter weights became non-finite at step {self.step} (e.g. {bad[0]}): no checkpoint written; "
                "resume from the last one with a lower optim.lr, or bf16 instead of fp16"
            )
        path = None
        if accelerator.is_main_process:
            path = ckpt.write_checkpoint(self.output_dir, self.step, self._write_checkpoint, self.config.logging.keep_checkpoints)
        accelerator.wait_for_everyone()
        return path or ckpt.checkpoints_root(self.output_dir) / ckpt.checkpoint_name(self.step)

    def _write_checkpoint(self, folder: Path) -> None:
        from safetensors.torch import save_file

        from flexip.version import __version__

        self.release_adapter().save_pretrained(folder / "adapter")
        self.config.save(folder / "config.yaml")
        state = folder / ckpt.STATE_DIR
        state.mkdir()
        if self.ema is not None:
            save_file({k: v.detach().cpu().contiguous() for k, v in self.adapter.state_dict().items()}, str(state / "adapter.safetensors"))
            ckpt.save_state_tree(self.ema.state_dict(), state, "ema")
        ckpt.save_state_tree(self.optimizer.state_dict(), state, "optimizer")
        if self.accelerator.scaler is not None:
            ckpt.save_state_tree(self.accelerator.scaler.state_dict(), state, "grad_scaler")
        ckpt.save_trainer_state(
            state,
            {
                "step": self.step,
                "data": self.stream.state_dict(),
                "num_processes": self.accelerator.num_processes,
                "skipped": dict(self.skipped),
                "ema": self.ema is not None,
                "flexip_version": __version__,
                "loss_curve": self.loss_curve,
            },
        )

    def _load_checkpoint(self, checkpoint: Path) -> None:
        from safetensors.torch import load_file

        state_dir = checkpoint / ckpt.STATE_DIR
        state = ckpt.load_trainer_state(checkpoint)
        if state["ema"] and self.is_ip_adapter:  # the raw weights under their module names, not the shipped layout
            self.adapter.load_state_dict(load_file(str(state_dir / "adapter.safetensors")), strict=True)
        else:
            raw = (
                state_dir / "adapter.safetensors"
                if state["ema"]
                else checkpoint / "adapter" / (IP_WEIGHTS_NAME if self.is_ip_adapter else WEIGHTS_NAME)
            )
            self.adapter.load_adapter_state_dict(load_file(str(raw)))
        optimizer_state = ckpt.load_state_tree(state_dir, "optimizer")
        if len(optimizer_state["param_groups"]) != len(self.optimizer.param_groups):
            raise CheckpointError(
                f"{checkpoint} was trained with {len(optimizer_state['param_groups'])} optimizer group(s), this config makes "
                f"{len(self.optimizer.param_groups)}: optim.personalization_lr_scale can change between sittings, but not to or from 1"
            )
        self.optimizer.load_state_dict(optimizer_state)
        for group, fresh in zip(self.optimizer.param_groups, parameter_groups(self.adapter, self.config.optim.personalization_lr_scale)):
            group["lr_scale"] = fresh.get("lr_scale", 1.0)  # the config's scale, not the checkpoint's (like optim.lr)
        if self.ema is not None and state["ema"]:
            self.ema.load_state_dict(ckpt.load_state_tree(state_dir, "ema"))
        elif self.ema is not None:
            self._warning("%s has no EMA state: the EMA starts from its weights", checkpoint)
            self.ema = EMA(self.adapter, self.config.runtime.ema_decay)
        if self.accelerator.scaler is not None and (state_dir / "grad_scaler.json").is_file():
            self.accelerator.scaler.load_state_dict(ckpt.load_state_tree(state_dir, "grad_scaler"))
        if state["num_processes"] != self.accelerator.num_processes:
            self._warning(
                "resuming a %d-process run on %d processes: the data order changes from here on",
                state["num_processes"],
                self.accelerator.num_processes,
            )
        self.stream.load_state_dict(state["data"])
        self.step, self.skipped = int(state["step"]), Counter(state["skipped"])
        self.loss_curve = [pair for pair in state.get("loss_curve", []) if pair[0] <= self.step]
        self._info("resumed from %s (step %d)", checkpoint, self.step)
