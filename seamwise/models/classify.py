"""What a model file or folder is: which family, and whether the engine can run it.

Single-file checkpoints are recognised from their safetensors header (tensor names and shapes);
Stable Diffusion families by the engine's own rules (engine.api.checkpoint_family), the newer
transformer families by the keys that only they carry, so that a user sees "FLUX.1, not yet
supported" rather than a failed load. Diffusers folders are recognised from model_index.json.
Nothing here loads a weight.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from seamwise.models.header import HeaderError, read_shapes
from seamwise.models.sources import read_json

FAMILY_NAMES = {"sd1": "SD 1.x", "sd2": "SD 2.x", "sdxl": "SDXL", "flux1": "FLUX.1",
                "flux2": "FLUX.2", "sd3": "SD 3.x", "qwen-image": "Qwen-Image",
                "seamwise-tiny": "Seamwise tiny"}
SUPPORTED = {"sd1", "sd2", "sdxl", "seamwise-tiny"}
NOT_YET = "not yet supported"
# Checkpoints saved by ComfyUI or A1111 prefix the diffusion model's keys; bare files do not.
_PREFIXES = ("model.diffusion_model.", "")
# Diffusers pipeline class -> family (SD 1.x and 2.x share a class; the text encoder tells them).
_PIPELINES = {"StableDiffusionXLPipeline": "sdxl", "StableDiffusionXLImg2ImgPipeline": "sdxl",
              "FluxPipeline": "flux1", "FluxImg2ImgPipeline": "flux1", "Flux2Pipeline": "flux2",
              "StableDiffusion3Pipeline": "sd3", "QwenImagePipeline": "qwen-image"}


@dataclass(frozen=True)
class Kind:
    """A model's format and family; `note` says why it cannot run where it cannot."""
    format: str                 # "checkpoint" or "diffusers"
    family: Optional[str]       # a FAMILY_NAMES key, or None when unrecognised
    note: str = ""

    @property
    def supported(self) -> bool:
        return self.family in SUPPORTED and not self.note

    @property
    def family_name(self) -> str:
        return FAMILY_NAMES.get(self.family or "", "unknown")


def _has(shapes: dict, key: str) -> bool:
    return any(p + key in shapes for p in _PREFIXES)


def _transformer_family(shapes: dict) -> Optional[str]:
    """The newer families by their signature keys (as ComfyUI's model detection knows them)."""
    if _has(shapes, "double_stream_modulation_img.lin.weight"):
        return "flux2"
    if _has(shapes, "double_blocks.0.img_attn.qkv.weight"):
        return "flux1"
    if _has(shapes, "joint_blocks.0.context_block.attn.qkv.weight"):
        return "sd3"
    if _has(shapes, "txt_norm.weight") and _has(shapes, "transformer_blocks.0.img_mod.1.weight"):
        return "qwen-image"
    return None


def classify_checkpoint(path: Path) -> Kind:
    """The family of a single-file .safetensors checkpoint, from its header alone."""
    if path.suffix.lower() != ".safetensors":
        return Kind("checkpoint", None, "only .safetensors files are read (pickled .ckpt files "
                                        "can run arbitrary code)")
    try:
        shapes = read_shapes(path)
    except HeaderError as e:
        return Kind("checkpoint", None, f"not a readable safetensors file: {e}")
    newer = _transformer_family(shapes)
    if newer:
        return Kind("checkpoint", newer, NOT_YET)
    from engine.api import checkpoint_family

    try:
        return Kind("checkpoint", checkpoint_family(shapes))
    except ValueError as e:
        return Kind("checkpoint", None, str(e))


def is_diffusers_folder(path: Path) -> bool:
    return (path / "model_index.json").is_file()


def classify_folder(path: Path) -> Kind:
    """The family of a diffusers folder, from model_index.json and the component configs."""
    index = read_json(path / "model_index.json")
    pipeline = str(index.get("_class_name", ""))
    family = _PIPELINES.get(pipeline)
    if family is None and pipeline.startswith("StableDiffusion") and "XL" not in pipeline:
        width = read_json(path / "text_encoder" / "config.json").get("hidden_size")
        family = {768: "sd1", 1024: "sd2"}.get(width)
        if family is None:
            return Kind("diffusers", None, f"{pipeline} with a text encoder of width {width}")
        channels = read_json(path / "unet" / "config.json").get("in_channels", 4)
        if channels != 4:
            return Kind("diffusers", family, f"a {channels}-channel UNet (inpainting or "
                                             "upscaler); only 4-channel models are supported")
    if family is None:
        return Kind("diffusers", None, f"unrecognised pipeline {pipeline or '(none)'}")
    return Kind("diffusers", family, "" if family in SUPPORTED else NOT_YET)


def classify(path: Path) -> Kind:
    return classify_folder(path) if path.is_dir() else classify_checkpoint(path)
