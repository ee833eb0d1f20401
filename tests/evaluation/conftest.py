"""Shared fixtures for the evaluation tests: tiny random backbones saved to disk (so the real loading
code runs, offline), a tiny DreamBench in the official layout, and a guard that fails any network use."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED = (REPO_ROOT / ".." / "shared").resolve()
SHARED_DREAMBENCH = SHARED / "dreambench" / "dataset"
SHARED_AESTHETIC_HEAD = SHARED / "weights" / "laion-aesthetic-v2" / "sac+logos+ava1-l14-linearMSE.pth"

TINY_PROMPTS = """Classes

subject_name,class
dog,dog
can,can

Prompts

Object Prompts

prompt_list = [
'a {0} {1} in the jungle'.format(unique_token, class_token),
'a {0} {1} in the snow'.format(unique_token, class_token),
'a red {0} {1}'.format(unique_token, class_token)
]

Live Subject Prompts

prompt_list = [
'a {0} {1} in the jungle'.format(unique_token, class_token),
'a {0} {1} wearing a red hat'.format(unique_token, class_token),
'a red {0} {1}'.format(unique_token, class_token)
]
"""


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("evaluation tests must not touch the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def random_image(seed: int, size: int = 40) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))


def _write_tokenizer(folder: Path) -> None:
    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    characters = list(bytes_to_unicode().values())
    vocab = {character: index for index, character in enumerate(characters)}
    vocab.update({character + "</w>": len(characters) + index for index, character in enumerate(characters)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(vocab=str(folder / "vocab.json"), merges=str(folder / "merges.txt"), model_max_length=77)
    tokenizer.save_pretrained(folder)


def tiny_clip_config(projection_dim: int = 768):
    from transformers import CLIPConfig

    return CLIPConfig(
        text_config=dict(
            vocab_size=514,
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=77,
            bos_token_id=512,
            eos_token_id=513,
            pad_token_id=513,
        ),
        vision_config=dict(
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
        ),
        projection_dim=projection_dim,
    )


@pytest.fixture(scope="session")
def tiny_backbone_dirs(tmp_path_factory) -> dict[str, str]:
    """Folders holding a tiny CLIP (projection 768, so the real aesthetic head fits), a copy of it used as
    the aesthetic image encoder (loaded vision-only), and a tiny DINO ViT, each with its processors."""
    from transformers import CLIPImageProcessor, CLIPModel, ViTConfig, ViTImageProcessor, ViTModel

    root = tmp_path_factory.mktemp("backbones")
    clip_dir, dino_dir = root / "clip", root / "dino"
    clip_dir.mkdir()
    dino_dir.mkdir()
    torch.manual_seed(0)
    CLIPModel(tiny_clip_config()).save_pretrained(clip_dir)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(clip_dir)
    _write_tokenizer(clip_dir)
    aesthetic_dir = root / "clip-large-stand-in"
    shutil.copytree(clip_dir, aesthetic_dir)
    vit = ViTConfig(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=8)
    ViTModel(vit).save_pretrained(dino_dir)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(dino_dir)
    return {"clip": str(clip_dir), "dino": str(dino_dir), "aesthetic_clip": str(aesthetic_dir)}


@pytest.fixture(scope="session")
def aesthetic_head_path(tmp_path_factory) -> str:
    """The real LAION head from ../shared when present; otherwise a random head in the same format."""
    if SHARED_AESTHETIC_HEAD.is_file():
        return str(SHARED_AESTHETIC_HEAD)
    from flexip.evaluation.backbones import AestheticHead

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("head") / "random-head.pth"
    torch.save(AestheticHead().state_dict(), path)
    return str(path)


@pytest.fixture(scope="session")
def backbone_config(tiny_backbone_dirs, aesthetic_head_path):
    from flexip.evaluation.backbones import BackboneConfig

    return BackboneConfig(
        clip=tiny_backbone_dirs["clip"],
        dino=tiny_backbone_dirs["dino"],
        clip_iqa=tiny_backbone_dirs["clip"],
        aesthetic_clip=tiny_backbone_dirs["aesthetic_clip"],
        aesthetic_head=aesthetic_head_path,
        device="cpu",
        batch_size=4,
    )


@pytest.fixture(scope="session")
def backbone_args(backbone_config, tiny_bench_dir) -> list[str]:
    """The `flexip eval` flags that point at the tiny benchmark and the tiny backbones."""
    config = backbone_config
    flags = {
        "--benchmark": tiny_bench_dir,
        "--clip-model": config.clip,
        "--dino-model": config.dino,
        "--iqa-model": config.clip_iqa,
        "--aesthetic-model": config.aesthetic_clip,
        "--aesthetic-head": config.aesthetic_head,
    }
    return [str(word) for flag, value in flags.items() for word in (flag, value)]


@pytest.fixture(scope="session")
def backbones(backbone_config):
    from flexip.evaluation.backbones import Backbones

    return Backbones.load(backbone_config)


@pytest.fixture(scope="session")
def tiny_bench_dir(tmp_path_factory) -> Path:
    """A DreamBench in the official layout: a live subject (dog) and an object (can), 3 prompts each."""
    root = tmp_path_factory.mktemp("dreambench") / "dataset"
    root.mkdir()
    (root / "prompts_and_classes.txt").write_text(TINY_PROMPTS)
    for offset, subject in enumerate(("dog", "can")):
        (root / subject).mkdir()
        for index in range(3):
            random_image(100 * offset + index).save(root / subject / f"{index:02d}.jpg")
    return root


@pytest.fixture(scope="session")
def tiny_bench(tiny_bench_dir):
    from flexip.evaluation.dreambench import load_dreambench

    return load_dreambench(tiny_bench_dir)


def write_images(folder: Path, layout: dict[str, list[int]], seeds=(0, 1), offset: int = 0) -> None:
    """folder/<subject>/<prompt index>/<seed>.png with random content."""
    for subject, prompt_indices in layout.items():
        for prompt_index in prompt_indices:
            target = folder / subject / f"{prompt_index:02d}"
            target.mkdir(parents=True, exist_ok=True)
            for seed in seeds:
                random_image(offset + 1000 * prompt_index + seed + sum(map(ord, subject)), size=36).save(target / f"{seed}.png")


@pytest.fixture(scope="session")
def cli():
    """The `flexip` command group (so errors go through main's `error: ...` / exit 2 handling)."""
    from flexip.cli.main import main

    return main
