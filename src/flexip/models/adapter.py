"""`FlexIPAdapter`: every trainable weight of FlexIP in one model.

Saved like a diffusers/peft adapter: `config.json` (dims, target layers, encoder ids, version) plus
`flexip_adapter.safetensors` whose keys are layer names, e.g.
`layers.up_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k_pres.weight` or
`preservation.blocks.0.attention.to_q.weight`. The config is also stored in the safetensors metadata,
so the weight file describes itself.

It is a diffusers `ModelMixin`, so a pipeline that holds one (`FlexIPPipeline`) saves and loads it with
its other components (`pipe.save_pretrained` writes `adapter/`, `from_pretrained` reads it back), and
model CPU offload moves it like any model: `forward` computes both token sets in one call.

`from_ip_adapter` turns an IP-Adapter checkpoint in the official layout into a FlexIP adapter whose
preservation branch reproduces it exactly at γ = 1 (`flexip.models.ip_adapter`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin  # also the name diffusers' pipeline loader looks up in this module
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from flexip.atomic import atomic_path, write_text
from flexip.errors import CheckpointError
from flexip.models.attention_processor import DecoupledKV
from flexip.models.personalization import PersonalizationAdapter
from flexip.models.preservation import PreservationAdapter, ResamplerConfig
from flexip.version import __version__

WEIGHTS_NAME = "flexip_adapter.safetensors"
#: what diffusers' pipeline loader passes to every model's from_pretrained (`load_sub_model`); the adapter
#: reads `torch_dtype` / `dtype`, `variant` and `device_map` (a single device), the others do not apply to it
DIFFUSERS_LOADING_KWARGS = (
    "max_memory",
    "offload_folder",
    "offload_state_dict",
    "use_safetensors",
    "use_flashpack",
    "low_cpu_mem_usage",
    "disable_mmap",
    "quantization_config",
)
HUB_KWARGS = ("revision", "cache_dir", "token", "local_files_only", "force_download", "proxies", "subfolder")
PICKLE_WEIGHTS_NAMES = ("flexip_adapter.bin", "flexip_adapter.pt", "pytorch_model.bin")

DEFAULT_IMAGE_ENCODER = "h94/IP-Adapter:models/image_encoder"
DEFAULT_DINO_ENCODER = "facebook/dinov2-large"


def cross_attention_layers(unet: nn.Module) -> dict[str, tuple[int, int]]:
    """Layer name → (hidden size, cross-attention width) of every cross-attention layer of a UNet,
    read from the modules themselves (never parsed from names)."""
    layers = {}
    for name in unet.attn_processors:
        layer_name = name.removesuffix(".processor")
        attn = unet.get_submodule(layer_name)
        if getattr(attn, "is_cross_attention", False):
            layers[layer_name] = (attn.to_q.out_features, attn.to_k.in_features)
    return layers


class FlexIPAdapter(ModelMixin, ConfigMixin):
    config_name = "config.json"

    @register_to_config
    def __init__(
        self,
        target_layers: dict[str, int],
        cross_attention_dim: int = 768,
        clip_embed_dim: int = 1024,
        dino_hidden_dim: int = 1024,
        num_global_tokens: int = 4,
        num_queries: int = 16,
        preservation_depth: int = 4,
        preservation_width: int = 768,
        preservation_heads: int = 12,
        num_visual_tokens: int = 4,
        personalization_depth: int = 2,
        personalization_heads: int = 8,
        image_encoder: str = DEFAULT_IMAGE_ENCODER,
        dino_encoder: str = DEFAULT_DINO_ENCODER,
        dino_layer: int = -1,
        flexip_version: str = __version__,
        global_module: str = "linear",
        clip_hidden_dim: int | None = None,
        resampler_width: int = 1280,
        resampler_depth: int = 4,
        resampler_heads: int = 20,
        detail_residual: bool = False,
        personalization_dino: bool = False,
    ):
        super().__init__()
        if not target_layers:
            raise CheckpointError("an adapter needs at least one target cross-attention layer")
        resampler = None
        if global_module == "resampler":
            if clip_hidden_dim is None:
                raise CheckpointError("global_module='resampler' reads CLIP hidden states: give clip_hidden_dim (the image encoder's hidden size)")
            resampler = ResamplerConfig(clip_hidden_dim, resampler_width, resampler_depth, resampler_heads)
        elif global_module != "linear":
            raise CheckpointError(f"global_module must be 'linear' (SPEC) or 'resampler' (IP-Adapter Plus), got {global_module!r}")
        self.preservation = PreservationAdapter(
            clip_embed_dim,
            dino_hidden_dim,
            cross_attention_dim,
            num_global_tokens,
            num_queries,
            preservation_depth,
            preservation_width,
            preservation_heads,
            resampler=resampler,
            detail_residual=detail_residual,
        )
        self.personalization = PersonalizationAdapter(
            clip_embed_dim,
            cross_attention_dim,
            num_visual_tokens,
            personalization_depth,
            personalization_heads,
            dino_dim=dino_hidden_dim if personalization_dino else None,
        )
        # nested containers so that state-dict keys are the UNet's own layer names
        self.layers = nn.ModuleDict()
        for layer_name, hidden_size in target_layers.items():
            *parents, leaf = layer_name.split(".")
            node = self.layers
            for part in parents:
                if part not in node:
                    node[part] = nn.ModuleDict()
                node = node[part]
            node[leaf] = DecoupledKV(cross_attention_dim, hidden_size)

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def from_unet(cls, unet: nn.Module, clip_embed_dim: int, dino_hidden_dim: int, **config) -> FlexIPAdapter:
        """A fresh adapter for `unet`: one K'/V' pair per cross-attention layer, copied from its text K/V."""
        layers = cross_attention_layers(unet)
        widths = {width for _, width in layers.values()}
        if len(widths) != 1:
            raise CheckpointError(f"expected one cross-attention width in the UNet, found {sorted(widths)}")
        adapter = cls(
            target_layers={name: hidden for name, (hidden, _) in layers.items()},
            cross_attention_dim=widths.pop(),
            clip_embed_dim=clip_embed_dim,
            dino_hidden_dim=dino_hidden_dim,
            **config,
        )
        for name in layers:
            attn = unet.get_submodule(name)
            adapter.layer(name).copy_from(attn.to_k, attn.to_v)
        return adapter.to(device=next(unet.parameters()).device)

    @classmethod
    def from_ip_adapter(cls, path: str | os.PathLike, unet: nn.Module, **options) -> FlexIPAdapter:
        """A FlexIP adapter for `unet` warm-started from an IP-Adapter checkpoint in the official layout
        (`image_proj.*`, `ip_adapter.*`; base or Plus, SD1.5 or SDXL): at γ = 1 it renders as diffusers'
        own IP-Adapter at the same scale. Options: see `flexip.models.ip_adapter.adapter_from_ip_adapter`."""
        from flexip.models.ip_adapter import adapter_from_ip_adapter

        return adapter_from_ip_adapter(cls, path, unet, **options)

    @torch.no_grad()
    def silence_personalization(self) -> None:
        """Zero every layer's V'_pers: the personalization branch then adds nothing (γ = 0 renders as the
        base model) until training moves it. The alternative to SPEC §1's copy of the text V, under which
        a fresh adapter at γ = 0 doubles the text cross-attention (docs/training.md)."""
        for name in self.target_layers:
            self.layer(name).to_v_pers.weight.zero_()

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def to(self, *args, **kwargs):
        """`nn.Module.to`: ModelMixin's version checks quantization and group offloading, which the adapter never
        uses, and warns on every dtype cast (diffusers 0.42)."""
        return nn.Module.to(self, *args, **kwargs)

    @property
    def reads_clip_tokens(self) -> bool:
        """True when the preservation branch reads the CLIP image encoder's hidden states (IP-Adapter Plus)."""
        return self.config.global_module == "resampler"

    def layer(self, layer_name: str) -> DecoupledKV:
        return self.layers.get_submodule(layer_name)

    @property
    def target_layers(self) -> dict[str, int]:
        return dict(self.config.target_layers)

    def check_compatible(self, unet: nn.Module) -> None:
        """Raise a CheckpointError naming the mismatch if this adapter does not fit `unet`."""
        layers = cross_attention_layers(unet)
        for name, hidden in self.target_layers.items():
            if name not in layers:
                raise CheckpointError(f"the adapter targets layer {name!r}, which this UNet does not have as a cross-attention layer")
            unet_hidden, unet_width = layers[name]
            if unet_width != self.config.cross_attention_dim:
                raise CheckpointError(
                    f"cross-attention width mismatch: the adapter was built for {self.config.cross_attention_dim}, "
                    f"the base model's layer {name} has {unet_width} (different base model family?)"
                )
            if unet_hidden != hidden:
                raise CheckpointError(f"layer {name}: the adapter expects hidden size {hidden}, the UNet has {unet_hidden}")

    def check_encoders(self, image_encoder: nn.Module, dino_encoder: nn.Module) -> None:
        """Raise a CheckpointError if the reference encoders' widths are not the ones this adapter reads."""
        clip_width = getattr(image_encoder.config, "projection_dim", None)
        dino_width = getattr(dino_encoder.config, "hidden_size", None)
        if clip_width != self.config.clip_embed_dim:
            raise CheckpointError(
                f"the adapter reads {self.config.clip_embed_dim}-d CLIP image embeddings, the image encoder gives {clip_width}-d "
                f"(the adapter was trained with {self.config.image_encoder!r}; pass that encoder, or an adapter for this one)"
            )
        if dino_width != self.config.dino_hidden_dim:
            raise CheckpointError(
                f"the adapter reads {self.config.dino_hidden_dim}-d DINO tokens, the DINO encoder gives {dino_width}-d "
                f"(the adapter was trained with {self.config.dino_encoder!r}; pass that encoder, or an adapter for this one)"
            )

    # ---- the two adapters ---------------------------------------------------------------------
    def forward(
        self, clip_embeds: torch.Tensor, dino_tokens: torch.Tensor, text_embeds: torch.Tensor, clip_tokens: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(C_pres, C_pers) of a batch: reference features (batch rows) and the text they go with."""
        return self.preservation_tokens(clip_embeds, dino_tokens, clip_tokens), self.personalization_tokens(text_embeds, clip_embeds, dino_tokens)

    def preservation_tokens(self, clip_embeds: torch.Tensor, dino_tokens: torch.Tensor, clip_tokens: torch.Tensor | None = None) -> torch.Tensor:
        """C_pres: (batch, N_c + N_q, cross_dim). `clip_tokens` (batch, tokens, clip_hidden): only read by a
        resampler global module (IP-Adapter Plus)."""
        return self.preservation(clip_embeds, dino_tokens, clip_tokens)

    def personalization_tokens(self, text_embeds: torch.Tensor, clip_embeds: torch.Tensor, dino_tokens: torch.Tensor | None = None) -> torch.Tensor:
        """C_pers: (batch, seq, cross_dim), equal to `text_embeds` at initialization. `dino_tokens`: read only by an
        adapter with `personalization_dino`."""
        return self.personalization(text_embeds, clip_embeds, dino_tokens)

    # ---- saving and loading -------------------------------------------------------------------
    def save_pretrained(self, save_directory: str | os.PathLike, variant: str | None = None, **_diffusers_kwargs) -> Path:
        """Write config.json + flexip_adapter.safetensors (`flexip_adapter.VARIANT.safetensors` with a variant);
        each file is replaced atomically. Always safetensors: the other keywords diffusers' pipeline
        `save_pretrained` may pass (safe_serialization, max_shard_size) do not apply."""
        directory = Path(save_directory)
        directory.mkdir(parents=True, exist_ok=True)
        config_text = self.to_json_string()
        tensors = {key: value.detach().contiguous().cpu() for key, value in self.state_dict().items()}
        with atomic_path(directory / _weights_name(variant)) as temporary:
            save_file(tensors, str(temporary), metadata={"flexip_config": config_text, "format": "pt"})
        write_text(directory / self.config_name, config_text)
        return directory

    @classmethod
    def from_pretrained(
        cls,
        pretrained: str | os.PathLike,
        allow_pickle: bool = False,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        *,
        torch_dtype: torch.dtype | None = None,
        variant: str | None = None,
        device_map: str | torch.device | dict | None = None,
        **kwargs,
    ) -> FlexIPAdapter:
        """Load from a folder written by `save_pretrained`, or a hub repo id (downloaded on a user's machine).

        Loading is strict: missing or unexpected keys and wrong shapes raise a CheckpointError. Pickle
        checkpoints (.bin/.pt) are refused unless `allow_pickle=True`, and then read with weights_only=True.
        Takes the keywords diffusers' pipeline loader passes (`torch_dtype`, `variant`, `device_map`, ...), so a
        pipeline saved with its adapter loads back with `DiffusionPipeline.from_pretrained`.
        """
        unknown = sorted(set(kwargs) - set(DIFFUSERS_LOADING_KWARGS) - set(HUB_KWARGS))
        if unknown:
            raise TypeError(f"FlexIPAdapter.from_pretrained got unexpected keyword arguments {unknown}")
        hub_kwargs = {key: value for key, value in kwargs.items() if key in HUB_KWARGS and value is not None}
        dtype = dtype if dtype is not None else torch_dtype
        device = device if device is not None else _single_device(device_map)
        directory = _resolve_directory(pretrained, **hub_kwargs)
        config_path = directory / cls.config_name
        if not config_path.is_file():
            raise CheckpointError(f"no {cls.config_name} in {directory}: not a FlexIP adapter folder")
        try:
            config = json.loads(config_path.read_text())
        except json.JSONDecodeError as error:
            raise CheckpointError(f"{config_path} is not valid JSON: {error}") from None
        if config.get("_class_name") not in (None, cls.__name__):
            raise CheckpointError(f"{directory} holds a {config.get('_class_name')}, not a {cls.__name__}")
        state_dict = _read_weights(directory, allow_pickle, variant)
        try:
            adapter = cls.from_config(config)
        except TypeError as error:
            raise CheckpointError(f"invalid adapter config in {config_path}: {error}") from None
        adapter.load_adapter_state_dict(state_dict)
        return adapter.to(device=device, dtype=dtype).eval()

    def load_adapter_state_dict(self, state_dict: dict[str, torch.Tensor]) -> None:
        expected = self.state_dict()
        missing = sorted(set(expected) - set(state_dict))
        unexpected = sorted(set(state_dict) - set(expected))
        wrong = [
            f"{key}: checkpoint {tuple(state_dict[key].shape)}, expected {tuple(tensor.shape)}"
            for key, tensor in expected.items()
            if key in state_dict and state_dict[key].shape != tensor.shape
        ]
        problems = []
        if missing:
            problems.append(f"{len(missing)} missing keys (e.g. {', '.join(missing[:3])})")
        if unexpected:
            problems.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:3])})")
        if wrong:
            problems.append(f"{len(wrong)} wrong shapes (e.g. {'; '.join(wrong[:3])})")
        if problems:
            raise CheckpointError("adapter weights do not match the adapter config: " + "; ".join(problems))
        self.load_state_dict(state_dict, strict=True)


def _weights_name(variant: str | None) -> str:
    return WEIGHTS_NAME if variant is None else WEIGHTS_NAME.replace(".safetensors", f".{variant}.safetensors")


def _single_device(device_map) -> str | torch.device | None:
    """The device of a `device_map` that puts the whole adapter on one device (the adapter is small)."""
    if device_map is None or isinstance(device_map, (str, torch.device)):
        return None if device_map in ("auto", "balanced") else device_map
    devices = set(device_map.values()) if isinstance(device_map, dict) else {device_map}
    if len(devices) != 1:
        raise CheckpointError(f"the FlexIP adapter is loaded onto one device; got the device_map {device_map}")
    return devices.pop()


def _resolve_directory(pretrained: str | os.PathLike, **hub_kwargs) -> Path:
    path = Path(pretrained)
    try:
        if path.is_dir():
            return path
        exists = path.exists()
    except OSError as error:  # e.g. a name too long for the filesystem
        raise CheckpointError(f"cannot use the adapter path {str(path)[:80]}...: {error.strerror}") from None
    if exists:
        raise CheckpointError(f"expected an adapter folder (config.json + {WEIGHTS_NAME}), got the file {path}")
    text = str(pretrained)
    if text.count("/") != 1 or text.startswith((".", "/")):
        raise CheckpointError(f"adapter not found: {text} is neither a local folder nor a hub repo id (owner/name)")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(text, allow_patterns=["config.json", "*.safetensors"], **hub_kwargs))
    except Exception as error:  # offline, missing repo, auth: all mean "cannot get it"
        raise CheckpointError(f"could not fetch adapter {text!r} from the hub: {error}") from None


def _read_weights(directory: Path, allow_pickle: bool, variant: str | None = None) -> dict[str, torch.Tensor]:
    weights = directory / _weights_name(variant)
    if variant is not None and not weights.is_file():
        raise CheckpointError(f"no {weights.name} in {directory} (variant {variant!r})")
    if weights.is_file():
        try:
            with safe_open(str(weights), framework="pt") as handle:
                return {key: handle.get_tensor(key) for key in handle.keys()}
        except Exception as error:
            raise CheckpointError(f"cannot read {weights}: {error}") from None
    for name in PICKLE_WEIGHTS_NAMES:
        candidate = directory / name
        if candidate.is_file():
            if not allow_pickle:
                raise CheckpointError(
                    f"{candidate} is a pickle checkpoint, which can run code when loaded; refusing. Convert it to "
                    f"safetensors, or pass allow_pickle=True (--allow-pickle) if you trust it"
                )
            try:
                return torch.load(candidate, map_location="cpu", weights_only=True)
            except Exception as error:
                raise CheckpointError(f"cannot read {candidate} safely (weights_only=True): {error}") from None
    raise CheckpointError(f"no {WEIGHTS_NAME} in {directory}")
