"""Assembling the trained stages into standard folders: the base model (a `StableDiffusionPipeline`
folder) and the `miniworld` preset shipped in the package.

Preset layout (a folder of flexip's preset registry, e.g. src/flexip/presets/miniworld/, given to `ship`)::

    base/           StableDiffusionPipeline.save_pretrained: unet, vae, text_encoder, tokenizer, scheduler
    image_encoder/  CLIPVisionModelWithProjection + CLIPImageProcessorPil config   (FlexIP's c_cls)
    dino/           Dinov2Model + BitImageProcessorPil config                     (FlexIP's F_dino)
    adapter/        FlexIPAdapter.save_pretrained
    eval/clip       CLIPModel + tokenizer + processor   (CLIP-T, CLIP-I; never seen by the adapter)
    eval/dino       Dinov2Model + processor             (DINO-I)
    demo.json, demo/  what `flexip demo` renders (the held-out demo identities as PNGs)
    manifest.json   how every part was made + sha256 of every shipped file
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from flexip.atomic import atomic_directory, write_json
from flexip.paths import portable_path
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
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    with atomic_directory(out) as temporary:
        pipe.save_pretrained(temporary, safe_serialization=True)
    return out


def _copy(source: Path, target: Path) -> None:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.tmp*"))


#: `flexip demo` on the miniworld: held-out identities (never trained on), prompts and settings; shipped in the
#: preset as data (demo.json + the references as PNGs), so that flexip renders the demo without this package.
DEMO = {
    "subjects": (2, 8),
    "prompts": ("a {noun} on the beach", "a {noun} in the snow", "a red {noun} at night"),
    "steps": 12,
    "guidance": 3.0,
}
DEMO_NOTE = (
    "preset miniworld: a 32×32 stack trained from scratch by `flexip miniworld build`; references are held-out "
    "identities the adapter never saw (see docs/miniworld.md)."
)


def write_demo(folder: Path, world_seed: int = 0) -> None:
    """demo.json and demo/*.png of the preset: the demo identities rendered on the plain backdrop."""
    import re

    from flexip_miniworld.identity import make_identity
    from flexip_miniworld.render import render_image

    identities = [make_identity("heldout", index, world_seed) for index in DEMO["subjects"]]
    nouns = sorted({identity.noun for identity in identities})
    subjects = {}
    (Path(folder) / "demo").mkdir(parents=True, exist_ok=True)
    for identity in identities:
        name = f"{identity.name} ({identity.noun})"
        file = f"demo/{re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-')}.png"
        render_image(identity).save(Path(folder) / file)
        subjects[name] = [file]
    prompts = [prompt.format(noun=nouns[0] if len(nouns) == 1 else "{noun}") for prompt in DEMO["prompts"]]
    write_json(
        Path(folder) / "demo.json",
        {
            "subjects": subjects,
            "prompts": prompts,
            "steps": DEMO["steps"],
            "guidance": DEMO["guidance"],
            "note": DEMO_NOTE,
            "made_by": f"held-out identities {' and '.join(map(str, DEMO['subjects']))} of the miniworld (world seed {world_seed}), "
            "rendered on the plain backdrop by flexip_miniworld.render.render_image",
        },
    )


def ship(work: Path, preset_dir: Path, log=print) -> dict:
    """Write the preset folder from WORKDIR's finished stages (atomically: built aside, then swapped in)."""
    work, preset_dir = Path(work), Path(preset_dir)
    build_manifest = json.loads((work / "manifest.json").read_text()) if (work / "manifest.json").exists() else {"stages": {}}
    with atomic_directory(preset_dir) as staging:
        assemble_base(work, staging / "base")
        _copy(work / "clip" / "image_encoder", staging / "image_encoder")
        _copy(work / "dino" / "model", staging / "dino")
        _copy(work / "adapter" / "run" / "adapter", staging / "adapter")
        _copy(work / "eval_clip" / "model", staging / "eval" / "clip")
        _copy(work / "eval_dino" / "model", staging / "eval" / "dino")
        name_encoders_inside_the_preset(staging / "adapter")
        write_demo(staging)
        files = folder_hashes(staging)
        size = sum((staging / name).stat().st_size for name in files)
        if size > SIZE_LIMIT_BYTES:
            raise RuntimeError(f"the preset is {size / 2**20:.1f} MiB; the limit is {SIZE_LIMIT_BYTES / 2**20:.0f} MiB")
        stages = {name: {k: v for k, v in record.items() if k != "losses"} for name, record in build_manifest.get("stages", {}).items()}
        write_json(
            staging / "manifest.json",
            {
                "name": "miniworld",
                "description": "A miniature FlexIP stack trained from scratch on the procedural miniworld (flexip miniworld build).",
                "resolution": 32,
                "total_bytes": size,
                "settings": build_manifest.get("settings"),
                "stages": stages,
                "files_sha256": files,
            },
        )
    log(f"[ship] {len(files)} files, {size / 2**20:.2f} MiB → {preset_dir}")
    return {"output": portable_path(preset_dir), "total_bytes": size, "files": len(files)}


def name_encoders_inside_the_preset(adapter_dir: Path) -> None:
    """The adapter trained on WORK/clip and WORK/dino names its encoders by their place in the preset."""
    from flexip.models.adapter import FlexIPAdapter

    adapter = FlexIPAdapter.from_pretrained(str(adapter_dir))
    adapter.register_to_config(image_encoder="miniworld:image_encoder", dino_encoder="miniworld:dino")
    adapter.save_pretrained(adapter_dir)
