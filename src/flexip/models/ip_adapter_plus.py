"""IP-Adapter Plus as a trainable baseline, built from diffusers' own classes and saved in IP-Adapter's layout.

IP-Adapter (Ye et al., 2023) adds one image branch to every cross-attention layer,

    out = Attn(Q, K_text, V_text) + s · Attn(Q, K_ip c_ip, V_ip c_ip),

with c_ip = Resampler(CLIP hidden states of the penultimate layer) in the Plus variant and one scale s as its
dial. `IPAdapterPlus` holds exactly what diffusers runs at inference:

- `image_proj`: `diffusers.models.embeddings.IPAdapterPlusImageProjection` (4 blocks, 64-d heads: the shape
  `load_ip_adapter` rebuilds from a checkpoint);
- one `IPAdapterAttnProcessor2_0` per cross-attention layer (its `to_k_ip` / `to_v_ip`), keyed by layer name.

A fresh one starts as IP-Adapter's training does: K_ip / V_ip copied from the layer's K / V, the resampler at
diffusers' random initialisation (seeded). `attach(unet)` installs the projection and the processors on a UNet
(as `unet._load_ip_adapter_weights` does) and `detach(unet)` gives back the processors it had.

`save_pretrained(folder)` writes `ip-adapter-plus.safetensors` in the official flat layout (`image_proj.*` with the
original resampler's key names, `ip_adapter.{2k+1}.to_{k,v}_ip.weight` for the k-th cross-attention layer) and a
small `ip_adapter_config.json` (image encoder, tokens); the file loads with diffusers'

    pipe.load_ip_adapter(folder, subfolder="", weight_name="ip-adapter-plus.safetensors", image_encoder_folder=None)
    pipe.set_ip_adapter_scale(s)
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import nn

from flexip.atomic import atomic_path, write_text
from flexip.errors import CheckpointError, FlexIPInputError

WEIGHTS_NAME = "ip-adapter-plus.safetensors"
CONFIG_NAME = "ip_adapter_config.json"
HEAD_DIM = 64  # diffusers' loader reads heads = to_q rows / 64
DEPTH = 4  # and always builds 4 resampler blocks


def _layer_key(name: str) -> str:
    """A processor name (down_blocks.0.attentions.0.transformer_blocks.0.attn2.processor) as a ModuleDict key."""
    return name.removesuffix(".processor").replace(".", "__")


class IPAdapterPlus(nn.Module):
    def __init__(
        self,
        layers: dict[str, int],
        cross_attention_dim: int,
        clip_hidden_dim: int,
        num_tokens: int = 16,
        hidden_dims: int = 64,
        image_encoder: str | None = None,
    ):
        from diffusers.models.attention_processor import IPAdapterAttnProcessor2_0
        from diffusers.models.embeddings import IPAdapterPlusImageProjection

        super().__init__()
        if hidden_dims % HEAD_DIM:
            raise FlexIPInputError(f"IP-Adapter Plus hidden_dims must be a multiple of {HEAD_DIM} (diffusers' head size), got {hidden_dims}")
        if num_tokens < 1:
            raise FlexIPInputError(f"IP-Adapter Plus num_tokens must be ≥ 1, got {num_tokens}")
        self.config = {
            "layers": dict(layers),
            "cross_attention_dim": cross_attention_dim,
            "clip_hidden_dim": clip_hidden_dim,
            "num_tokens": num_tokens,
            "hidden_dims": hidden_dims,
            "image_encoder": image_encoder,
            "clip_hidden_layer": -2,
        }
        self.image_proj = IPAdapterPlusImageProjection(
            embed_dims=clip_hidden_dim,
            output_dims=cross_attention_dim,
            hidden_dims=hidden_dims,
            depth=DEPTH,
            dim_head=HEAD_DIM,
            heads=hidden_dims // HEAD_DIM,
            num_queries=num_tokens,
        )
        self.processors = nn.ModuleDict(
            {
                _layer_key(name): IPAdapterAttnProcessor2_0(
                    hidden_size=hidden, cross_attention_dim=cross_attention_dim, scale=1.0, num_tokens=num_tokens
                )
                for name, hidden in layers.items()
            }
        )
        self._saved_processors: dict | None = None

    @property
    def layer_names(self) -> list[str]:
        return list(self.config["layers"])

    @classmethod
    def from_unet(
        cls, unet: nn.Module, clip_hidden_dim: int, num_tokens: int = 16, hidden_dims: int | None = None, image_encoder: str | None = None
    ) -> IPAdapterPlus:
        """A fresh IP-Adapter Plus for `unet`: K_ip / V_ip start as copies of each layer's K / V (as IP-Adapter trains)."""
        from flexip.models.adapter import cross_attention_layers

        cross = unet.config.cross_attention_dim
        hidden_dims = hidden_dims or max(HEAD_DIM, (cross // HEAD_DIM) * HEAD_DIM)
        # the cross-attention layers in `attn_processors` order (IP-Adapter's numbering), motion modules left out
        layers = {f"{name}.processor": hidden for name, (hidden, _) in cross_attention_layers(unet).items() if "motion_modules" not in name}
        adapter = cls(layers, cross, clip_hidden_dim, num_tokens, hidden_dims, image_encoder)
        with torch.no_grad():
            for name in layers:
                attention, processor = unet.get_submodule(name.removesuffix(".processor")), adapter.processors[_layer_key(name)]
                processor.to_k_ip[0].weight.copy_(attention.to_k.weight)
                processor.to_v_ip[0].weight.copy_(attention.to_v.weight)
        return adapter

    # ---- on a UNet ------------------------------------------------------------------------------
    def attach(self, unet: nn.Module) -> None:
        """Install the projection and the processors on `unet` (what `unet._load_ip_adapter_weights` sets up)."""
        from diffusers.models.embeddings import MultiIPAdapterImageProjection

        if self._saved_processors is not None:
            return
        processors = dict(unet.attn_processors)
        missing = [name for name in self.layer_names if name not in processors]
        if missing:
            raise FlexIPInputError(f"this IP-Adapter was made for another UNet: it has no layer {missing[0]}")
        self._saved_processors = processors
        unet.set_attn_processor(
            {name: self.processors[_layer_key(name)] if name in self.config["layers"] else processor for name, processor in processors.items()}
        )
        unet.encoder_hid_proj = MultiIPAdapterImageProjection([self.image_proj])
        unet.config.encoder_hid_dim_type = "ip_image_proj"

    def detach(self, unet: nn.Module) -> None:
        """Give `unet` back the processors it had before `attach`, without the image projection."""
        if self._saved_processors is None:
            return
        unet.encoder_hid_proj = None  # first: the resampler's own attention blocks count among the UNet's processors
        unet.config.encoder_hid_dim_type = None
        unet.set_attn_processor(self._saved_processors)
        self._saved_processors = None

    # ---- the official layout --------------------------------------------------------------------
    def official_state_dict(self) -> dict[str, torch.Tensor]:
        """Flat `image_proj.*` / `ip_adapter.*` tensors, as IP-Adapter's released checkpoints name them."""
        from flexip.models.ip_adapter import official_resampler_keys

        tensors = {f"image_proj.{key}": value for key, value in official_resampler_keys(self.image_proj.state_dict()).items()}
        for index, name in enumerate(self.layer_names):
            processor = self.processors[_layer_key(name)]
            tensors[f"ip_adapter.{2 * index + 1}.to_k_ip.weight"] = processor.to_k_ip[0].weight
            tensors[f"ip_adapter.{2 * index + 1}.to_v_ip.weight"] = processor.to_v_ip[0].weight
        return {key: value.detach().contiguous().cpu() for key, value in tensors.items()}

    def load_adapter_state_dict(self, tensors: dict[str, torch.Tensor]) -> None:
        """The inverse of `official_state_dict` (strict)."""
        from flexip.models.ip_adapter import official_resampler_keys, resampler_state_dict

        projection = resampler_state_dict({key[len("image_proj.") :]: value for key, value in tensors.items() if key.startswith("image_proj.")})
        layers = {}
        for index, name in enumerate(self.layer_names):
            for kind in ("k", "v"):
                key = f"ip_adapter.{2 * index + 1}.to_{kind}_ip.weight"
                if key not in tensors:
                    raise CheckpointError(f"the IP-Adapter checkpoint lacks {key} (layer {name})")
                layers[f"{_layer_key(name)}.to_{kind}_ip.0.weight"] = tensors[key]
        expected = len(official_resampler_keys(self.image_proj.state_dict())) + 2 * len(self.layer_names)
        if len(tensors) != expected:
            raise CheckpointError(f"the IP-Adapter checkpoint holds {len(tensors)} tensors, this config expects {expected}")
        try:
            self.image_proj.load_state_dict(projection, strict=True)
            self.processors.load_state_dict(layers, strict=True)
        except RuntimeError as error:
            raise CheckpointError(f"the IP-Adapter weights do not match its config: {str(error).splitlines()[0]}") from None

    def save_pretrained(self, save_directory: str | os.PathLike, **_ignored) -> Path:
        from safetensors.torch import save_file

        directory = Path(save_directory)
        directory.mkdir(parents=True, exist_ok=True)
        with atomic_path(directory / WEIGHTS_NAME) as temporary:
            save_file(self.official_state_dict(), str(temporary), metadata={"format": "pt"})
        write_text(directory / CONFIG_NAME, json.dumps(self.config, indent=2) + "\n")
        return directory

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike) -> IPAdapterPlus:
        from safetensors.torch import load_file

        folder = Path(folder)
        if not (folder / CONFIG_NAME).is_file() or not (folder / WEIGHTS_NAME).is_file():
            raise CheckpointError(f"{folder} is not an IP-Adapter folder written by flexip (expected {CONFIG_NAME} and {WEIGHTS_NAME})")
        config = json.loads((folder / CONFIG_NAME).read_text())
        config.pop("clip_hidden_layer", None)
        adapter = cls(**config)
        adapter.load_adapter_state_dict(load_file(str(folder / WEIGHTS_NAME)))
        return adapter.eval()
