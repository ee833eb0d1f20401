"""`FlexIP`: FlexIP attached to an unmodified diffusers UNet pipeline, the gate given per call.

    pipe = StableDiffusionXLPipeline.from_pretrained(...)                 # or ControlNet, img2img, inpaint, AnimateDiff
    flexip = FlexIP.attach(pipe, adapter, image_encoder=clip, dino_encoder=dino)
    reference = flexip.encode_reference("dog.jpg")                        # once
    image = pipe("a dog in the snow", cross_attention_kwargs=flexip.conditioning(reference, gamma=0.3)).images[0]
    flexip.detach()                                                       # the pipeline exactly as it was

The gate travels through diffusers' own per-call channel, `cross_attention_kwargs`, so everything else of
the pipeline is untouched: its prompts, guidance, LoRAs (`{**flexip.conditioning(...), "scale": 0.8}` sets a
LoRA scale as usual), ControlNets, schedulers, callbacks. A call without FlexIP's key is the pipeline's own,
bit for bit. `attach` swaps the processors of the UNet's cross-attention layers for FlexIP's (wrapping the
originals) and adds a forward hook; `detach` puts the very same processor objects back and removes the hook.
"""

from __future__ import annotations

from torch import nn

from flexip.encoders.reference import ReferenceEmbeds, ReferenceEncoder
from flexip.errors import FlexIPInputError
from flexip.gate import GammaLike, GateSettings
from flexip.integrations.layout import ReferenceConditioning
from flexip.models.adapter import FlexIPAdapter
from flexip.models.injection import CONDITIONING_KEY, Injection, attach_adapter, remove_adapter


class FlexIP:
    """FlexIP attached to one pipeline's UNet. Make it with `FlexIP.attach`; `detach` (or leaving a `with`
    block) gives the pipeline back as it was."""

    def __init__(self, pipe, adapter: FlexIPAdapter, injection: Injection, encoders: dict):
        self.pipe = pipe
        self.adapter = adapter
        self._injection = injection
        self._encoders = encoders

    @classmethod
    def attach(
        cls,
        pipe,
        adapter: FlexIPAdapter | str,
        *,
        image_encoder: nn.Module | str | None = None,
        feature_extractor=None,
        dino_encoder: nn.Module | str | None = None,
        dino_processor=None,
        allow_pickle: bool = False,
    ) -> FlexIP:
        """Attach `adapter` (a FlexIPAdapter, or a folder / hub id / preset id of one) to `pipe.unet`.

        The reference encoders (models, or ids loaded with their processors) are only needed by
        `encode_reference`; without `image_encoder` the pipeline's own `image_encoder` (the CLIP vision model
        diffusers' IP-Adapter uses) is taken when it has one. The adapter is moved to the UNet's device and dtype."""
        from flexip.loading import load_adapter

        unet = getattr(pipe, "unet", None)
        if unet is None:
            raise FlexIPInputError(f"FlexIP attaches to a UNet pipeline; {type(pipe).__name__} has no unet")
        adapter = load_adapter(adapter, allow_pickle=allow_pickle)
        parameter = next(unet.parameters())
        adapter = adapter.to(device=parameter.device, dtype=parameter.dtype).eval()
        if image_encoder is None and getattr(pipe, "image_encoder", None) is not None:
            image_encoder, feature_extractor = pipe.image_encoder, feature_extractor or getattr(pipe, "feature_extractor", None)
        encoders = {
            "image_encoder": _encoder(image_encoder, feature_extractor, "image", parameter),
            "dino_encoder": _encoder(dino_encoder, dino_processor, "dino", parameter),
        }
        if encoders["image_encoder"] is not None and encoders["dino_encoder"] is not None:
            adapter.check_encoders(encoders["image_encoder"][0], encoders["dino_encoder"][0])
        return cls(pipe, adapter, attach_adapter(unet, adapter), encoders)

    # ---- the reference, once --------------------------------------------------------------------------
    def encode_reference(self, images, multi_reference: str = "mean", fit: str = "center_crop") -> ReferenceEmbeds:
        """Reference image(s) → `ReferenceEmbeds`: one image or a flat list = one subject, a list of lists = one
        subject per inner list (several references are averaged; `multi_reference="concat"` keeps every view's
        DINO tokens). Changing γ never re-encodes: pass the result to every `conditioning` call."""
        missing = [name for name, value in self._encoders.items() if value is None]
        if missing:
            recorded = {"image_encoder": self.adapter.config.image_encoder, "dino_encoder": self.adapter.config.dino_encoder}
            raise FlexIPInputError(
                "encode_reference needs the reference encoders: FlexIP.attach(..., "
                + ", ".join(f"{name}={recorded[name]!r}" for name in missing)
                + ") (the ids this adapter was trained with), or pass precomputed ReferenceEmbeds to conditioning()"
            )
        (image_encoder, image_processor), (dino_encoder, dino_processor) = self._encoders["image_encoder"], self._encoders["dino_encoder"]
        encoder = ReferenceEncoder(
            image_encoder,
            image_processor,
            dino_encoder,
            dino_processor,
            dino_layer=self.adapter.config.dino_layer,
            fit=fit,
            multi_reference=multi_reference,
            clip_hidden_layer=-2 if self.adapter.reads_clip_tokens else None,
        )
        return encoder.encode(images)

    # ---- the gate, per call -----------------------------------------------------------------------------
    def conditioning(
        self,
        reference,
        gamma: GammaLike | None = None,
        *,
        adapter_scale: float = 1.0,
        w_pres: float | None = None,
        w_pers: float | None = None,
        images_per_prompt: int = 1,
        guidance: bool | None = None,
        pipeline=None,
    ) -> dict:
        """`{"flexip": ...}`, to pass as (or merge into) the pipeline's `cross_attention_kwargs`.

        `reference`: `ReferenceEmbeds` (from `encode_reference`; one subject, or one per prompt) or images.
        `gamma`: every form of `flexip.gate.Gamma` (a number, a sweep list, per-prompt values, per block, a
        schedule); `w_pres`/`w_pers` replace it; `adapter_scale` = 0 is the pipeline's own output. A sweep of k
        values lays them along each prompt's images: call the pipeline with num_images_per_prompt = k ×
        `images_per_prompt` (and, for a shared noise, a list of generators with one seed). `guidance`: whether the
        batch holds classifier-free-guidance halves; default: the calling pipeline's `do_classifier_free_guidance`,
        the attached one unless `pipeline` names another that shares its UNet (one made with `from_pipe`)."""
        if not isinstance(reference, ReferenceEmbeds):
            reference = self.encode_reference(reference)
        if pipeline is not None and getattr(pipeline, "unet", None) is not self.pipe.unet:
            raise FlexIPInputError("conditioning(pipeline=...) takes a pipeline that shares the attached UNet (made with from_pipe)")
        caller = pipeline if pipeline is not None else self.pipe
        gate = GateSettings(gamma=gamma, adapter_scale=adapter_scale, w_pres=w_pres, w_pers=w_pers)  # γ checked here, once
        value = ReferenceConditioning(
            self.adapter,
            reference,
            gate,
            images_per_prompt=images_per_prompt,
            guidance=guidance if guidance is not None else lambda call: _pipeline_guidance(caller, call),
            num_steps=lambda: _pipeline_steps(caller),
        )
        return {CONDITIONING_KEY: value}

    # ---- detaching --------------------------------------------------------------------------------------
    @property
    def attached(self) -> bool:
        return self._injection.active

    def detach(self) -> None:
        """Give the UNet back its very own processor objects and remove the hook (idempotent)."""
        remove_adapter(self._injection)

    def __enter__(self) -> FlexIP:
        return self

    def __exit__(self, *exc) -> None:
        self.detach()


def _pipeline_guidance(pipe, call) -> bool:
    """The pipeline's `do_classifier_free_guidance`, once the call is known to be that pipeline's: diffusers
    pipelines keep the `cross_attention_kwargs` of their call and pass that very dict to the UNet."""
    if getattr(pipe, "_cross_attention_kwargs", None) is not call.cross_attention_kwargs:
        raise FlexIPInputError(
            f"this UNet call does not come from the {type(pipe).__name__} FlexIP reads its guidance from (another pipeline sharing "
            "the UNet, e.g. made with from_pipe?): pass FlexIP.conditioning(..., pipeline=the_pipeline_you_call) or guidance=True/False"
        )
    try:
        return bool(pipe.do_classifier_free_guidance)
    except AttributeError:
        raise FlexIPInputError(
            f"{type(pipe).__name__} does not say whether it runs classifier-free guidance: pass FlexIP.conditioning(..., guidance=)"
        ) from None


def _pipeline_steps(pipe) -> int:
    try:
        return int(pipe.num_timesteps)
    except AttributeError:
        raise FlexIPInputError(f"a γ schedule needs the number of denoising steps, which {type(pipe).__name__} does not expose") from None


def _encoder(model, processor, kind: str, like):
    """(model, processor) from objects or an id (hub id, folder, preset id; loaded onto the device and dtype of
    `like`, a UNet parameter); None if not given."""
    if model is None:
        return None
    if isinstance(model, str):
        from flexip.encoders.loading import load_dino_encoder, load_image_encoder
        from flexip.presets import resolve_preset_id

        loaded, loaded_processor = (load_image_encoder if kind == "image" else load_dino_encoder)(resolve_preset_id(model))
        return loaded.to(device=like.device, dtype=like.dtype), processor or loaded_processor
    if processor is None:
        if kind == "dino":
            raise FlexIPInputError("pass dino_processor= with a DINO model object (or give dino_encoder as an id)")
        from transformers import CLIPImageProcessorPil

        processor = CLIPImageProcessorPil()  # OpenAI CLIP preprocessing, as load_image_encoder's default
    return model.eval(), processor
