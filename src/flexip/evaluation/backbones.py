"""Loading the evaluation backbones and turning images / texts into embeddings.

Defaults follow the DreamBench convention (Ruiz et al. 2023) and the paper's Table 1:

| role                   | default id                        | class used                          |
|------------------------|-----------------------------------|-------------------------------------|
| CLIP-T, CLIP-I         | `openai/clip-vit-base-patch32`    | `CLIPModel` (projected embeddings)  |
| DINO-I                 | `facebook/dino-vits16`            | `ViTModel` / `Dinov2Model` (CLS)    |
| CLIP-IQA               | `openai/clip-vit-base-patch32`    | `CLIPModel`                         |
| Aesthetic (image emb.) | `openai/clip-vit-large-patch14`   | `CLIPVisionModelWithProjection`     |
| Aesthetic (head)       | LAION improved-aesthetic-predictor v2, `sac+logos+ava1-l14-linearMSE.pth` |

Every id is configurable (`BackboneConfig`) and recorded with each result. A backbone shared by two
roles (same id) is loaded once.

Images reach the image processors as 8-bit RGB PIL images (through `flexip.data.images.load_image`),
never as float arrays in [0, 1]: an HF image processor rescales by 1/255 again.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from PIL import Image

from flexip.data.images import ImageInput, load_image
from flexip.devices import resolve_device
from flexip.errors import FlexIPInputError
from flexip.evaluation import fetch
from flexip.evaluation.defaults import (
    AESTHETIC_HEAD_FILENAME,
    AESTHETIC_HEAD_SHA256,
    AESTHETIC_HEAD_URL,
    DEFAULT_AESTHETIC_CLIP,
    DEFAULT_CLIP,
    DEFAULT_CLIP_IQA,
    DEFAULT_DINO,
)
from flexip.evaluation.metrics import IQA_ANCHORS, METRICS, validate_metrics
from flexip.hashing import file_sha256

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class BackboneConfig:
    """Which networks compute the metrics, and how they run. Recorded with every result."""

    clip: str = DEFAULT_CLIP
    dino: str = DEFAULT_DINO
    clip_iqa: str = DEFAULT_CLIP_IQA
    aesthetic_clip: str = DEFAULT_AESTHETIC_CLIP
    #: Local path of the LAION head; None: ``<cache>/laion-aesthetic-v2/<file>``, downloaded if missing.
    aesthetic_head: str | None = None
    iqa_anchors: tuple[str, str] = IQA_ANCHORS
    device: str | None = None
    dtype: str = "float32"
    batch_size: int = 32

    def __post_init__(self) -> None:
        for name in ("clip", "dino", "clip_iqa", "aesthetic_clip"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise FlexIPInputError(f"backbone id `{name}` must be a non-empty string, got {value!r}")
        if self.dtype not in _DTYPES:
            raise FlexIPInputError(f"dtype must be one of {sorted(_DTYPES)}, got {self.dtype!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise FlexIPInputError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        if len(self.iqa_anchors) != 2 or not all(isinstance(text, str) and text for text in self.iqa_anchors):
            raise FlexIPInputError(f"iqa_anchors must be two non-empty texts (good, bad), got {self.iqa_anchors!r}")
        object.__setattr__(self, "iqa_anchors", tuple(self.iqa_anchors))

    def to_dict(self) -> dict:
        return asdict(self)


def prepare_images(images: Iterable[ImageInput]) -> list[Image.Image]:
    """Paths / PIL images / uint8 arrays → upright 8-bit RGB PIL images (what image processors expect)."""
    prepared = []
    for image in images:
        if isinstance(image, torch.Tensor):
            raise FlexIPInputError(
                "pass images to score as PIL images, paths or uint8 arrays, not torch tensors "
                "(image processors expect 8-bit pixels, and a float tensor would be rescaled twice)"
            )
        prepared.append(load_image(image))
    return prepared


def _projected(output, field_name: str) -> torch.Tensor:
    """The projected embedding from whatever a CLIP call returned.

    transformers < 5 returns a tensor from `get_image_features` / `get_text_features`; transformers 5
    returns an output object whose `pooler_output` holds the projected vector; the `*WithProjection`
    models put it in `image_embeds` / `text_embeds`.
    """
    if isinstance(output, torch.Tensor):
        return output
    embeds = getattr(output, field_name, None)
    if embeds is None:
        embeds = getattr(output, "pooler_output", None)
    if embeds is None:
        raise TypeError(f"cannot find a projected embedding in {type(output).__name__}")
    return embeds


@contextlib.contextmanager
def _quiet_transformers():
    """Silence load reports (e.g. the unused text tower when only a CLIP vision tower is loaded)."""
    from transformers.utils import logging

    previous = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(previous)


def _batches(items: Sequence, size: int) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class ClipEmbedder:
    """A CLIP model with its image processor (and tokenizer, when texts are embedded).

    `model` is a `CLIPModel` (images and texts) or a `CLIPVisionModelWithProjection` (images only).
    Embeddings come back as float32 CPU tensors, not normalized (the metrics normalize).
    """

    def __init__(self, model, image_processor, tokenizer=None, name: str = "clip", batch_size: int = 32):
        self.model = model.eval()
        self.image_processor = image_processor
        self.tokenizer = tokenizer
        self.name = name
        self.batch_size = batch_size

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @torch.inference_mode()
    def embed_images(self, images: Sequence[ImageInput]) -> torch.Tensor:
        images = prepare_images(images)
        if not images:
            raise FlexIPInputError("no images to embed")
        chunks = []
        for batch in _batches(images, self.batch_size):
            pixels = self.image_processor(images=list(batch), return_tensors="pt")["pixel_values"]
            pixels = pixels.to(device=self.device, dtype=self.dtype)
            if hasattr(self.model, "get_image_features"):
                output = self.model.get_image_features(pixel_values=pixels)
            else:
                output = self.model(pixel_values=pixels)
            chunks.append(_projected(output, "image_embeds").float().cpu())
        return torch.cat(chunks)  # [N, D]

    @torch.inference_mode()
    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        if self.tokenizer is None or not hasattr(self.model, "get_text_features"):
            raise FlexIPInputError(f"backbone {self.name!r} was loaded for images only; it cannot embed texts")
        texts = list(texts)
        if not texts or not all(isinstance(text, str) for text in texts):
            raise FlexIPInputError("texts to embed must be a non-empty list of strings")
        max_length = min(int(self.tokenizer.model_max_length), int(self.model.config.text_config.max_position_embeddings))
        chunks = []
        for batch in _batches(texts, self.batch_size):
            tokens = self.tokenizer(list(batch), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
            output = self.model.get_text_features(
                input_ids=tokens["input_ids"].to(self.device), attention_mask=tokens["attention_mask"].to(self.device)
            )
            chunks.append(_projected(output, "text_embeds").float().cpu())
        return torch.cat(chunks)  # [N, D]


class DinoEmbedder:
    """A DINO ViT (`ViTModel`, e.g. `facebook/dino-vits16`, or `Dinov2Model`): the CLS token of the last layer."""

    def __init__(self, model, image_processor, name: str = "dino", batch_size: int = 32):
        self.model = model.eval()
        self.image_processor = image_processor
        self.name = name
        self.batch_size = batch_size

    @torch.inference_mode()
    def embed_images(self, images: Sequence[ImageInput]) -> torch.Tensor:
        images = prepare_images(images)
        if not images:
            raise FlexIPInputError("no images to embed")
        parameter = next(self.model.parameters())
        chunks = []
        for batch in _batches(images, self.batch_size):
            pixels = self.image_processor(images=list(batch), return_tensors="pt")["pixel_values"]
            hidden = self.model(pixel_values=pixels.to(device=parameter.device, dtype=parameter.dtype)).last_hidden_state
            chunks.append(hidden[:, 0].float().cpu())  # [B, tokens, D] → CLS [B, D]
        return torch.cat(chunks)


class AestheticHead(torch.nn.Module):
    """LAION improved-aesthetic-predictor v2 MLP: 768→1024→128→64→16→1, dropout between, no activations.

    Layer indices match the released state dict (`layers.{0,2,4,6,7}`). Input: L2-normalized CLIP
    ViT-L/14 image embeddings [N, 768]; output [N, 1], about 1 to 10.
    """

    def __init__(self, input_dim: int = 768):
        super().__init__()
        self.layers = torch.nn.Sequential(
            torch.nn.Linear(input_dim, 1024),
            torch.nn.Dropout(0.2),
            torch.nn.Linear(1024, 128),
            torch.nn.Dropout(0.2),
            torch.nn.Linear(128, 64),
            torch.nn.Dropout(0.1),
            torch.nn.Linear(64, 16),
            torch.nn.Linear(16, 1),
        )

    def forward(self, embeds: torch.Tensor) -> torch.Tensor:
        return self.layers(embeds)


def default_aesthetic_head_path() -> Path:
    return fetch.cache_dir() / "laion-aesthetic-v2" / AESTHETIC_HEAD_FILENAME


def load_aesthetic_head(path: str | os.PathLike | None = None, download: bool = True) -> tuple[AestheticHead, Path]:
    """Load the real LAION v2 head weights → (head in eval mode, path it came from).

    With no `path`, use the cache copy, downloading it from its public source first when `download`
    is true and the environment allows it (see `fetch.offline`).
    """
    if path is None:
        path = default_aesthetic_head_path()
        if not path.is_file():
            if not download:
                raise FlexIPInputError(f"no aesthetic head at {path}; pass the path of {AESTHETIC_HEAD_FILENAME} or allow its download")
            fetch.download(AESTHETIC_HEAD_URL, path, "the LAION aesthetic head", sha256=AESTHETIC_HEAD_SHA256)
    path = Path(path)
    if not path.is_file():
        raise FlexIPInputError(f"aesthetic head weights not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle / zip errors of many kinds: all mean "not a state dict"
        raise FlexIPInputError(f"cannot read the aesthetic head {path} as a PyTorch state dict: {error}") from None
    if not isinstance(state, dict) or "layers.0.weight" not in state:
        raise FlexIPInputError(f"{path} is not a LAION aesthetic head state dict (expected keys layers.{{0,2,4,6,7}}.*)")
    head = AestheticHead(input_dim=state["layers.0.weight"].shape[1])
    try:
        head.load_state_dict(state)
    except RuntimeError as error:
        raise FlexIPInputError(f"{path} does not match the LAION aesthetic head layout: {error}") from None
    return head.eval(), path


def _load_error(role: str, model_id: str, error: Exception) -> FlexIPInputError:
    return FlexIPInputError(
        f"could not load the {role} backbone {model_id!r} ({type(error).__name__}: {error}). Pass a local "
        "model folder, or a hub id that is in the local cache when offline."
    )


def load_clip_embedder(
    model_id: str, with_text: bool = True, device: str | None = None, dtype: str = "float32", batch_size: int = 32
) -> ClipEmbedder:
    """Load a CLIP checkpoint (hub id or folder). Without text, only the vision tower + projection is loaded."""
    from transformers import AutoConfig, AutoImageProcessor, AutoTokenizer, CLIPModel, CLIPVisionModelWithProjection

    try:
        with _quiet_transformers():
            image_processor = AutoImageProcessor.from_pretrained(model_id)
            if with_text:
                model = CLIPModel.from_pretrained(model_id, dtype=_DTYPES[dtype])
                tokenizer = AutoTokenizer.from_pretrained(model_id)
            else:
                config = AutoConfig.from_pretrained(model_id)
                if hasattr(config, "vision_config"):  # a full CLIP checkpoint: keep its projection width
                    vision_config = config.vision_config
                    vision_config.projection_dim = config.projection_dim
                    config = vision_config
                model = CLIPVisionModelWithProjection.from_pretrained(model_id, config=config, dtype=_DTYPES[dtype])
                tokenizer = None
    except (OSError, ValueError, KeyError) as error:
        raise _load_error("CLIP", model_id, error) from None
    model = model.to(resolve_device(device))
    return ClipEmbedder(model, image_processor, tokenizer, name=model_id, batch_size=batch_size)


def load_dino_embedder(model_id: str, device: str | None = None, dtype: str = "float32", batch_size: int = 32) -> DinoEmbedder:
    """Load a DINO ViT (`ViTModel`, e.g. `facebook/dino-vits16`) or a `Dinov2Model` (hub id or folder)."""
    from transformers import AutoImageProcessor, AutoModel

    try:
        with _quiet_transformers():
            image_processor = AutoImageProcessor.from_pretrained(model_id)
            model = AutoModel.from_pretrained(model_id, dtype=_DTYPES[dtype])
    except (OSError, ValueError, KeyError) as error:
        raise _load_error("DINO", model_id, error) from None
    if type(model).__name__ not in ("ViTModel", "Dinov2Model", "Dinov2WithRegistersModel"):
        raise FlexIPInputError(f"DINO-I needs a ViTModel or Dinov2Model; {model_id!r} loads as {type(model).__name__}")
    return DinoEmbedder(model.to(resolve_device(device)), image_processor, name=model_id, batch_size=batch_size)


@dataclass
class Backbones:
    """The loaded networks for a set of metrics. Roles that a metric subset does not need stay None."""

    config: BackboneConfig
    clip: ClipEmbedder | None = None
    dino: DinoEmbedder | None = None
    clip_iqa: ClipEmbedder | None = None
    aesthetic_clip: ClipEmbedder | None = None
    aesthetic_head: torch.nn.Module | None = None
    aesthetic_head_path: str | None = None
    metrics: tuple[str, ...] = field(default=METRICS)

    @classmethod
    def load(cls, config: BackboneConfig | None = None, metrics: Sequence[str] = METRICS, download: bool = True) -> Backbones:
        """Load what `metrics` need. Two roles with the same CLIP id share one model."""
        config = config or BackboneConfig()
        metrics = validate_metrics(metrics)
        options = dict(device=config.device, dtype=config.dtype, batch_size=config.batch_size)
        loaded: dict[str, ClipEmbedder] = {}
        text_ids = ({config.clip} if "CLIP-T" in metrics else set()) | ({config.clip_iqa} if "CLIP-IQA" in metrics else set())

        def clip(model_id: str) -> ClipEmbedder:
            if model_id not in loaded:
                loaded[model_id] = load_clip_embedder(model_id, with_text=model_id in text_ids, **options)
            return loaded[model_id]

        backbones = cls(config=config, metrics=metrics)
        if "CLIP-T" in metrics or "CLIP-I" in metrics:
            backbones.clip = clip(config.clip)
        if "CLIP-IQA" in metrics:
            backbones.clip_iqa = clip(config.clip_iqa)
        if "Aesthetic" in metrics:
            backbones.aesthetic_clip = clip(config.aesthetic_clip)
            head, path = load_aesthetic_head(config.aesthetic_head, download=download)
            backbones.aesthetic_head = head.to(backbones.aesthetic_clip.device)
            backbones.aesthetic_head_path = str(path)
        if "DINO-I" in metrics:
            backbones.dino = load_dino_embedder(config.dino, **options)
        return backbones

    def describe(self) -> dict:
        """What produced the numbers: backbone ids per metric, the head file and its hash, and settings."""
        ids = {
            "CLIP-T": self.config.clip,
            "CLIP-I": self.config.clip,
            "DINO-I": self.config.dino,
            "CLIP-IQA": self.config.clip_iqa,
            "Aesthetic": {"image_encoder": self.config.aesthetic_clip, "head": self.aesthetic_head_path},
        }
        description = {
            "per_metric": {name: ids[name] for name in self.metrics},
            "config": self.config.to_dict(),
        }
        if self.aesthetic_head_path:
            description["aesthetic_head_sha256"] = file_sha256(self.aesthetic_head_path)
        return description
