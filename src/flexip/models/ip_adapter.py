"""A warm start from IP-Adapter: an official IP-Adapter checkpoint → a `FlexIPAdapter` that renders like it.

IP-Adapter (Ye et al., 2023) trains the same kind of decoupled cross-attention as FlexIP's preservation
branch: `out = Attn(Q, K_text, V_text) + s · Attn(Q, K_ip c_ip, V_ip c_ip)`, with image tokens c_ip from
a projection of the CLIP image embedding (base) or a resampler over CLIP hidden states (Plus). Its
public checkpoints use one layout, read here:

    image_proj.proj.weight / .bias, image_proj.norm.*          base: c_cls → 4 tokens (Linear, LayerNorm)
    image_proj.latents, proj_in, proj_out, norm_out,           Plus: the resampler (4 blocks; in each,
        layers.{i}.0.{norm1,norm2,to_q,to_kv,to_out},              0 = attention, 1 = LayerNorm, Linear, GELU, Linear)
        layers.{i}.1.{0,1,3}
    ip_adapter.{2k+1}.to_k_ip.weight / to_v_ip.weight          the k-th cross-attention layer of the UNet, in the
                                                               order of `unet.attn_processors` (as diffusers reads them)

as a `.safetensors` file with those flat keys, or a pickled `.bin` holding {"image_proj": ..., "ip_adapter": ...}
(refused unless allow_pickle=True, then read with weights_only=True).

The FlexIP adapter made from it:
- preservation: the global module *is* IP-Adapter's projection (base: our `TokenProjection`, the same Linear
  → tokens → LayerNorm; Plus: diffusers' `IPAdapterPlusImageProjection`), and K'_pres / V'_pres are
  IP-Adapter's to_k_ip / to_v_ip;
- the DINO detail tokens join through `detail_residual`: they start as copies of the global tokens
  (`detail_scale` = 0), which leaves attention over C_pres equal to attention over the global tokens;
- personalization: starts silent (V'_pers = 0; its adapter is the identity at init as always).
So at γ = 1 and adapter_scale s the UNet computes exactly what diffusers' IP-Adapter computes at scale s
(tested to ≤ 1e-4), and fine-tuning (`flexip train model.init_adapter=...`) starts from there.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch
from torch import nn

from flexip.errors import CheckpointError

#: the reference image encoders of the public h94/IP-Adapter checkpoints, by what the checkpoint reads
IMAGE_ENCODER_VIT_H = "h94/IP-Adapter:models/image_encoder"  # OpenCLIP ViT-H/14: 1024-d embeds, 1280-d hidden states
IMAGE_ENCODER_VIT_BIG_G = "h94/IP-Adapter:sdxl_models/image_encoder"  # OpenCLIP ViT-bigG/14: 1280-d embeds


def read_ip_adapter(path: str | os.PathLike, allow_pickle: bool = False) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(image_proj, ip_adapter) state dicts of an official IP-Adapter checkpoint file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"IP-Adapter checkpoint not found: {path} (give the .safetensors or .bin file, e.g. models/ip-adapter_sd15.safetensors)"
        )
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            flat = load_file(str(path))
        except Exception as error:
            raise CheckpointError(f"cannot read {path}: {error}") from None
        parts: dict[str, dict[str, torch.Tensor]] = {"image_proj": {}, "ip_adapter": {}}
        for key, value in flat.items():
            group, _, rest = key.partition(".")
            if group in parts:
                parts[group][rest] = value
        image_proj, ip_adapter = parts["image_proj"], parts["ip_adapter"]
    else:
        if not allow_pickle:
            raise CheckpointError(
                f"{path} is a pickle checkpoint, which can run code when loaded; refusing. Use the .safetensors file of the same "
                f"IP-Adapter, or pass allow_pickle=True if you trust it"
            )
        try:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:
            raise CheckpointError(f"cannot read {path} safely (weights_only=True): {error}") from None
        image_proj, ip_adapter = loaded.get("image_proj", {}), loaded.get("ip_adapter", {})
    if not image_proj or not ip_adapter:
        raise CheckpointError(f"{path} is not an IP-Adapter checkpoint in the official layout (expected image_proj.* and ip_adapter.* keys)")
    return image_proj, ip_adapter


def ip_adapter_kind(image_proj: dict[str, torch.Tensor]) -> str:
    """'base' (c_cls → 4 tokens) or 'plus' (resampler over CLIP hidden states); other variants are refused."""
    if set(image_proj) == {"proj.weight", "proj.bias", "norm.weight", "norm.bias"}:
        return "base"
    if "latents" in image_proj and "proj_in.weight" in image_proj:
        return "plus"
    raise CheckpointError(
        "unsupported IP-Adapter variant (FlexIP warm-starts from IP-Adapter and IP-Adapter Plus; Full-Face and FaceID "
        f"checkpoints project other features). Its image_proj keys: {', '.join(sorted(image_proj)[:6])}"
    )


#: A Plus resampler block's parameters: official name (after `layers.{i}.`) → diffusers' name; to_kv is split apart.
_RESAMPLER_NAMES = {
    "0.norm1": "ln0",
    "0.norm2": "ln1",
    "0.to_q": "attn.to_q",
    "0.to_out": "attn.to_out.0",
    "1.0": "ff.0",
    "1.1": "ff.1.net.0.proj",
    "1.3": "ff.1.net.2",
}


def resampler_state_dict(image_proj: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official Plus resampler keys → the keys of diffusers' `IPAdapterPlusImageProjection`."""
    converted = {}
    for key, value in image_proj.items():
        match = re.fullmatch(r"layers\.(\d+)\.([01])\.(\w+)\.(weight|bias)", key)
        if match is None:
            converted[key] = value  # latents, proj_in, proj_out, norm_out keep their names
            continue
        block, part, name, kind = match.groups()
        prefix, official = f"layers.{block}", f"{part}.{name}"
        if official == "0.to_kv":  # one (2 · inner, width) matrix: keys on top, values below
            keys, values = value.chunk(2, dim=0)
            converted[f"{prefix}.attn.to_k.{kind}"], converted[f"{prefix}.attn.to_v.{kind}"] = keys, values
        elif official in _RESAMPLER_NAMES:
            converted[f"{prefix}.{_RESAMPLER_NAMES[official]}.{kind}"] = value
        else:
            raise CheckpointError(f"unexpected IP-Adapter Plus resampler key image_proj.{key}")
    return converted


def official_resampler_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse of `resampler_state_dict`: diffusers' `IPAdapterPlusImageProjection` keys → the official ones
    (to_k and to_v stacked back into one to_kv)."""
    official = {diffusers: name for name, diffusers in _RESAMPLER_NAMES.items()}
    converted = {}
    for key, value in state.items():
        match = re.fullmatch(r"layers\.(\d+)\.(.+)\.(weight|bias)", key)
        if match is None:
            converted[key] = value
            continue
        block, name, kind = match.groups()
        if name == "attn.to_v":
            continue  # joined with to_k below
        if name == "attn.to_k":
            converted[f"layers.{block}.0.to_kv.{kind}"] = torch.cat([value, state[f"layers.{block}.attn.to_v.{kind}"]], dim=0)
        elif name in official:
            converted[f"layers.{block}.{official[name]}.{kind}"] = value
        else:
            raise CheckpointError(f"unexpected resampler key {key}")
    return converted


def ip_adapter_layers(unet: nn.Module, ip_adapter: dict[str, torch.Tensor]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Layer name → (to_k_ip, to_v_ip) weights: the k-th cross-attention layer of `unet` (in the order of
    `unet.attn_processors`, motion modules left out) holds the checkpoint's `ip_adapter.{2k+1}` entry."""
    from flexip.models.adapter import cross_attention_layers

    names = [name for name in cross_attention_layers(unet) if "motion_modules" not in name]
    numbers = sorted({int(key.split(".")[0]) for key in ip_adapter})
    if len(numbers) != len(names):
        raise CheckpointError(
            f"the IP-Adapter has weights for {len(numbers)} cross-attention layers, this UNet has {len(names)} "
            f"(an IP-Adapter for another base model family?)"
        )
    layers = {}
    for index, name in enumerate(names):
        key = 2 * index + 1
        try:
            layers[name] = ip_adapter[f"{key}.to_k_ip.weight"], ip_adapter[f"{key}.to_v_ip.weight"]
        except KeyError as error:
            raise CheckpointError(f"the IP-Adapter has no weight ip_adapter.{error.args[0]} for layer {name}") from None
    return layers


def adapter_from_ip_adapter(
    cls,
    path: str | os.PathLike,
    unet: nn.Module,
    *,
    dino_hidden_dim: int = 1024,
    clip_embed_dim: int | None = None,
    image_encoder: str | None = None,
    allow_pickle: bool = False,
    **config,
):
    """The `FlexIPAdapter` (class `cls`) for `unet` warm-started from the IP-Adapter checkpoint at `path`.

    `dino_hidden_dim`: width of the DINO encoder the detail tokens will read (1024: DINOv2-L). `clip_embed_dim`:
    the CLIP image embedding width the personalization branch (and the detail queries) read; a base checkpoint
    fixes it, Plus reads hidden states and needs it given unless it is ViT-H's 1024. `image_encoder`: the id
    recorded in the config (default: the h94/IP-Adapter encoder the checkpoint was trained with). `config`:
    other FlexIPAdapter settings (num_queries, preservation_depth, ...; a multiple of the global tokens)."""
    image_proj, ip_adapter = read_ip_adapter(path, allow_pickle)
    kind = ip_adapter_kind(image_proj)
    if kind == "base":
        rows, read_dim = image_proj["proj.weight"].shape
        num_global = 4  # the base projection always makes 4 tokens (diffusers reads it the same way)
        cross = rows // num_global
        if clip_embed_dim not in (None, read_dim):
            raise CheckpointError(f"this IP-Adapter reads {read_dim}-d CLIP image embeddings, not {clip_embed_dim}-d")
        clip_embed_dim = read_dim
        default_encoder = IMAGE_ENCODER_VIT_H if read_dim == 1024 else IMAGE_ENCODER_VIT_BIG_G if read_dim == 1280 else None
        options = {}
    else:
        _, num_global, width = image_proj["latents"].shape
        cross = image_proj["proj_out.weight"].shape[0]
        depth = len({key.split(".")[1] for key in image_proj if key.startswith("layers.")})
        options = dict(
            global_module="resampler",
            clip_hidden_dim=image_proj["proj_in.weight"].shape[1],
            resampler_width=width,
            resampler_depth=depth,
            resampler_heads=image_proj["layers.0.0.to_q.weight"].shape[0] // 64,
        )
        clip_embed_dim = clip_embed_dim or 1024
        default_encoder = IMAGE_ENCODER_VIT_H
    layers = ip_adapter_layers(unet, ip_adapter)
    widths = {unet.get_submodule(name).to_k.in_features for name in layers}
    if widths != {cross}:
        raise CheckpointError(f"the IP-Adapter makes {cross}-wide image tokens, this UNet's cross-attention is {sorted(widths)} wide")
    encoder = image_encoder or default_encoder
    if encoder is None:
        raise CheckpointError(f"give image_encoder= (the CLIP vision model this {clip_embed_dim}-d IP-Adapter was trained with)")
    config.setdefault("num_queries", 16 if 16 % num_global == 0 else num_global)
    adapter = cls.from_unet(
        unet,
        clip_embed_dim=clip_embed_dim,
        dino_hidden_dim=dino_hidden_dim,
        num_global_tokens=num_global,
        image_encoder=encoder,
        detail_residual=True,
        **options,
        **config,
    )
    with torch.no_grad():
        if kind == "base":
            # identical math: Linear(c_cls) → (4, cross) → LayerNorm
            global_state = {"proj.weight": image_proj["proj.weight"], "proj.bias": image_proj["proj.bias"]}
            global_state.update({"norm.weight": image_proj["norm.weight"], "norm.bias": image_proj["norm.bias"]})
        else:
            global_state = resampler_state_dict(image_proj)
        missing, unexpected = adapter.preservation.global_tokens.load_state_dict(_cast(global_state, adapter), strict=False)
        if missing or unexpected:
            raise CheckpointError(f"the IP-Adapter projection does not fit: missing {missing[:3]}, unexpected {unexpected[:3]}")
        for name, (to_k_ip, to_v_ip) in layers.items():
            kv = adapter.layer(name)
            if kv.to_k_pres.weight.shape != to_k_ip.shape:
                raise CheckpointError(f"layer {name}: IP-Adapter K is {tuple(to_k_ip.shape)}, the UNet needs {tuple(kv.to_k_pres.weight.shape)}")
            kv.to_k_pres.weight.copy_(to_k_ip)
            kv.to_v_pres.weight.copy_(to_v_ip)
    adapter.silence_personalization()
    return adapter.eval()


def _cast(state: dict[str, torch.Tensor], adapter: nn.Module) -> dict[str, torch.Tensor]:
    parameter = next(adapter.parameters())
    return {key: value.to(device=parameter.device, dtype=parameter.dtype) for key, value in state.items()}
