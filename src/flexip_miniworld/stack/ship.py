"""Assembling the trained stages into standard folders: the base model (a `StableDiffusionPipeline`
folder) and the `miniworld` preset shipped in the package.

Preset layout (src/flexip/presets/miniworld/)::

    base/           StableDiffusionPipeline.save_pretrained: unet, vae, text_encoder, tokenizer, scheduler
    image_encoder/  CLIPVisionModelWithProjection + CLIPImageProcessorPil config   (FlexIP's c_cls)
    dino/           Dinov2Model + BitImageProcessorPil config                     (FlexIP's F_dino)
    adapter/        FlexIPAdapter.save_pretrained
    eval/clip       CLIPModel + tokenizer + processor   (CLIP-T, CLIP-I; never seen by the adapter)
    eval/dino       Dinov2Model + processor             (DINO-I)
    manifest.json   how every part was made + sha256 of every shipped file
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from flexip.paths import portable_path
from flexip.atomic import write_json
from flexip_miniworld.stack.common import derived_output, folder_hashes

SIZE_LIMIT_BYTES = 50 * 1024 * 1024


def assemble_base(work: Path, out: Path | None = None) -> Path:
    """work/base: the trained UNet + autoencoder + text encoder + tokenizer + scheduler as one SD folder.

    The autoencoder is the `decoder` stage's (same encoder, fine-tuned decoder) and the UNet the
    `unet_grow` stage's once those stages have run."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    from flexip_miniworld.stack.tokenizer import load_tokenizer

    work = Path(work)
    out = Path(out or work / "base")
    vae_dir = work / "decoder" / "model" if derived_output(work / "decoder", work / "autoencoder" / "model") else work / "autoencoder" / "model"
    unet_dir = work / "unet_grow" if derived_output(work / "unet_grow", work / "unet" / "model") else work / "unet"
    pipe = StableDiffusionPipeline(
        vae=AutoencoderKL.from_pretrained(vae_dir),
        text_encoder=CLIPTextModel.from_pretrained(work / "clip" / "text_encoder"),
        tokenizer=load_tokenizer(work / "tokenizer"),
        unet=UNet2DConditionModel.from_pretrained(unet_dir / "model"),
        scheduler=DDIMScheduler.from_pretrained(unet_dir / "scheduler"),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    pipe.save_pretrained(tmp, safe_serialization=True)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def _copy(source: Path, target: Path) -> None:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.tmp*"))


def ship(work: Path, preset_dir: Path, log=print) -> dict:
    """Write the preset folder from WORKDIR's finished stages (atomically: built aside, then swapped in)."""
    work, preset_dir = Path(work), Path(preset_dir)
    build_manifest = json.loads((work / "manifest.json").read_text()) if (work / "manifest.json").exists() else {"stages": {}}
    staging = preset_dir.with_name(preset_dir.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    assemble_base(work, staging / "base")
    _copy(work / "clip" / "image_encoder", staging / "image_encoder")
    _copy(work / "dino" / "model", staging / "dino")
    _copy(work / "adapter" / "run" / "adapter", staging / "adapter")
    _copy(work / "eval_clip" / "model", staging / "eval" / "clip")
    _copy(work / "eval_dino" / "model", staging / "eval" / "dino")
    files = folder_hashes(staging)
    size = sum((staging / name).stat().st_size for name in files)
    if size > SIZE_LIMIT_BYTES:
        raise RuntimeError(f"the preset is {size / 2**20:.1f} MiB; the limit is {SIZE_LIMIT_BYTES / 2**20:.0f} MiB")
    stages = {name: {k: v for k, v in record.items() if k != "losses"} for name, record in build_manifest.get("stages", {}).items()}
    manifest = {
        "name": "miniworld",
        "description": "A miniature FlexIP stack trained from scratch on the procedural miniworld (flexip miniworld build).",
        "resolution": 32,
        "total_bytes": size,
        "settings": build_manifest.get("settings"),
        "stages": stages,
        "files_sha256": files,
    }
    write_json(staging / "manifest.json", manifest)
    old = preset_dir.with_name(preset_dir.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if preset_dir.exists():
        preset_dir.rename(old)
    staging.rename(preset_dir)
    shutil.rmtree(old, ignore_errors=True)
    log(f"[ship] {len(files)} files, {size / 2**20:.2f} MiB → {preset_dir}")
    return {"output": portable_path(preset_dir), "total_bytes": size, "files": len(files)}
