"""How a diffusers pipeline lays out the rows of a UNet call, and the FlexIP conditioning laid out to match.

Every diffusers UNet pipeline (text-to-image, img2img, inpainting, ControlNet, SDXL, AnimateDiff) builds the
UNet batch the same way:

    rows = [unconditional rows ; conditional rows]        with classifier-free guidance (one half without)
    each half = prompts × images per prompt               (`num_images_per_prompt`, prompt-major)
    each image = frames                                    (AnimateDiff: the text is repeated per frame)

A γ sweep lays its values along the images of each prompt (prompts × sweep × images per prompt, as in
`FlexIPPipeline`), so a one-call sweep passes `num_images_per_prompt = len(sweep) × images_per_prompt`.
Unconditional rows see no image (zero reference features, as in training's condition dropout and diffusers'
own IP-Adapter); the gate weighs them like their conditional rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from flexip.encoders.reference import ReferenceEmbeds
from flexip.errors import FlexIPInputError
from flexip.gate import GateSettings
from flexip.gate.gamma import block_prefix
from flexip.models.adapter import FlexIPAdapter
from flexip.models.attention_processor import FlexIPConditioning
from flexip.models.injection import UNetCall


@dataclass(frozen=True)
class BatchLayout:
    """The rows of one UNet call: [uncond; cond] × prompts × (sweep × images) × frames."""

    guidance: bool
    prompts: int
    images_per_prompt: int  # rows of one prompt and sweep value (diffusers' num_images_per_prompt / sweep size)
    sweep: int
    frames: int

    @property
    def halves(self) -> int:
        return 2 if self.guidance else 1

    @property
    def rows(self) -> int:
        return self.halves * self.prompts * self.sweep * self.images_per_prompt * self.frames

    def subject_of_rows(self, subjects: int) -> torch.Tensor:
        """(rows,) long: the reference subject of each row; -1 for the unconditional rows (no image)."""
        per_prompt = self.sweep * self.images_per_prompt * self.frames
        prompt_subject = torch.arange(self.prompts) if subjects > 1 else torch.zeros(self.prompts, dtype=torch.long)
        conditional = prompt_subject.repeat_interleave(per_prompt)
        if not self.guidance:
            return conditional
        return torch.cat([torch.full_like(conditional, -1), conditional])


def read_layout(call: UNetCall, guidance: bool, sweep: int, images_per_prompt: int, subjects: int) -> BatchLayout:
    """The layout of `call`'s rows, or a FlexIPInputError that says what did not fit."""
    rows, samples = call.encoder_hidden_states.shape[0], call.sample.shape[0]
    if rows % samples:
        raise FlexIPInputError(f"the UNet got {samples} latents and {rows} text rows: not a whole number of frames per latent")
    frames = rows // samples
    halves = 2 if guidance else 1
    per_prompt = sweep * images_per_prompt
    if samples % (halves * per_prompt):
        what = f"a γ sweep of {sweep} values × images_per_prompt={images_per_prompt}" if sweep > 1 else f"images_per_prompt={images_per_prompt}"
        raise FlexIPInputError(
            f"the UNet batch has {samples // halves} conditional rows, not a multiple of {per_prompt} ({what}): pass the pipeline "
            f"num_images_per_prompt = {per_prompt} × (images of each γ), and FlexIP.conditioning(..., images_per_prompt=) those images"
        )
    if guidance and not torch.equal(call.sample[: samples // 2], call.sample[samples // 2 :]):
        raise FlexIPInputError(
            "the pipeline reports classifier-free guidance, but the UNet's latents are not two equal halves [uncond; cond]: "
            "is this call from another pipeline sharing the UNet? pass FlexIP.conditioning(..., pipeline=that_pipeline)"
        )
    prompts = samples // (halves * per_prompt)
    if subjects not in (1, prompts):
        raise FlexIPInputError(f"got {subjects} reference subjects for {prompts} prompts; give one subject or one per prompt")
    return BatchLayout(guidance, prompts, images_per_prompt, sweep, frames)


def check_block_keys(gate: GateSettings, layers: list[str]) -> None:
    """A per-block γ key must name some attention layer of the adapter (a typo would silently match none)."""
    for key, _ in gate.gamma.blocks if gate.gamma is not None else ():
        prefix = block_prefix(key)
        if not any(layer.startswith(prefix) for layer in layers):
            blocks = sorted({layer.split(".attentions")[0] for layer in layers})
            raise FlexIPInputError(
                f"per-block gamma key {key!r} matches no attention layer; use down, mid, up or a prefix such as {', '.join(blocks)}"
            )


class ReferenceConditioning:
    """The value of `cross_attention_kwargs["flexip"]` for a diffusers pipeline call (`FlexIP.conditioning`).

    Holds the reference (encoded once) and the gate (checked once); for each UNet call it reads the batch
    layout and returns a `FlexIPConditioning` for exactly those rows. Work is done once, not per step: the
    preservation tokens once per reference, the personalization tokens once per text batch (the pipeline
    passes the same prompt embeddings every step) with each layer's K'/V' of them (computed at the first step,
    reused at the next), the batch gate once per layout; a γ schedule is resolved per denoising step, counted by
    UNet calls (a call at a higher timestep than the last starts over)."""

    def __init__(
        self,
        adapter: FlexIPAdapter,
        reference: ReferenceEmbeds,
        gate: GateSettings,
        *,
        images_per_prompt: int = 1,
        guidance: bool | Callable[[UNetCall], bool],
        num_steps: Callable[[], int],
    ):
        if isinstance(images_per_prompt, bool) or not isinstance(images_per_prompt, int) or images_per_prompt < 1:
            raise FlexIPInputError(f"images_per_prompt must be a positive integer, got {images_per_prompt!r}")
        if adapter.reads_clip_tokens and reference.clip_tokens is None:
            raise FlexIPInputError(
                "this adapter reads CLIP hidden states (IP-Adapter Plus warm start): encode the reference with FlexIP.encode_reference"
            )
        check_block_keys(gate, list(adapter.target_layers))
        self.adapter, self.reference, self.gate = adapter, reference, gate
        self.images_per_prompt = images_per_prompt
        self._guidance = guidance
        self._num_steps = num_steps
        self._tables: tuple[torch.Tensor, ...] | None = None
        # (text, its version, layout, C_pres, C_pers, their K'/V' store): the steps of one call reuse all of it
        self._text: tuple[torch.Tensor, int | None, BatchLayout, torch.Tensor, torch.Tensor, dict] | None = None
        self._gates: dict[tuple[BatchLayout, int], tuple[GateSettings, ...]] = {}
        self._step: tuple[float, int] | None = None  # (last timestep, its step index)

    def conditioning_for(self, call: UNetCall) -> FlexIPConditioning | None:
        if self.gate.is_off:
            return None
        guidance = self._guidance(call) if callable(self._guidance) else self._guidance
        layout = read_layout(call, bool(guidance), len(self.gate.sweep), self.images_per_prompt, len(self.reference))
        text = call.encoder_hidden_states
        if self.adapter.device != text.device:
            self.adapter.to(text.device)  # the adapter follows the UNet (e.g. under model CPU offload)
        pres, pers, projections = self._tokens(text, layout)
        return FlexIPConditioning(pres, pers, self._gate(layout, call.timestep), projections=projections)

    # ---- tokens ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def _tokens(self, text: torch.Tensor, layout: BatchLayout) -> tuple[torch.Tensor, torch.Tensor, dict]:
        cached = self._text
        version = None if text.is_inference() else text._version  # inference tensors keep no version counter
        if cached is not None and cached[0] is text and cached[1] == version and cached[2] == layout:
            return cached[3], cached[4], cached[5]
        adapter = self.adapter
        if self._tables is None or self._tables[0].device != adapter.device:
            # row 0 is "no image" (zero features), row 1 + s is subject s
            reference = self.reference.to(device=adapter.device, dtype=adapter.dtype)
            with_no_image = lambda tensor: None if tensor is None else torch.cat([torch.zeros_like(tensor[:1]), tensor])
            clip, dino, clip_tokens = (with_no_image(t) for t in (reference.clip_embeds, reference.dino_tokens, reference.clip_tokens))
            self._tables = (clip, dino, adapter.preservation_tokens(clip, dino, clip_tokens))
        clip_table, dino_table, pres_table = self._tables
        rows = layout.subject_of_rows(len(self.reference)).to(adapter.device) + 1
        pres = pres_table.index_select(0, rows)
        dino_rows = None if dino_table is None else dino_table.index_select(0, rows)
        pers = adapter.personalization_tokens(text.to(adapter.dtype), clip_table.index_select(0, rows), dino_rows)
        pres, pers = pres.to(text.dtype), pers.to(text.dtype)
        self._text = (text, version, layout, pres, pers, {})
        return pres, pers, self._text[5]

    # ---- the gate ----------------------------------------------------------------------------------------
    def _gate(self, layout: BatchLayout, timestep) -> GateSettings:
        scheduled = self.gate.gamma is not None and self.gate.gamma.is_scheduled
        steps = self._num_steps() if scheduled else 1
        key = (layout, steps)
        if key not in self._gates:
            try:
                batch = self.gate.for_batch(layout.prompts, layout.images_per_prompt * layout.frames, repeat=layout.halves)
            except FlexIPInputError as error:
                raise FlexIPInputError(
                    f"{error} (FlexIP read the batch as {layout.prompts} prompt(s) × {layout.sweep * layout.images_per_prompt} images; "
                    f"with num_images_per_prompt > 1 pass FlexIP.conditioning(..., images_per_prompt=))"
                ) from None
            self._gates[key] = batch.at_steps(steps)
        gates = self._gates[key]
        if not scheduled:
            return gates[0]
        value = float(timestep.flatten()[0]) if isinstance(timestep, torch.Tensor) else float(timestep)
        index = 0 if self._step is None or value > self._step[0] else self._step[1] + 1
        self._step = (value, index)
        if index >= len(gates):
            raise FlexIPInputError(
                f"the pipeline called the UNet more often than its {len(gates)} denoising steps: cannot place this call in the γ schedule"
            )
        return gates[index]
