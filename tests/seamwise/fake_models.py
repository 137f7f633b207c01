"""Fake model trees as other tools lay them out, with tiny but valid safetensors files.

Each checkpoint carries the key names and shapes that identify its family; its data region is a
sparse hole, so an SDXL-shaped file takes a few kilobytes of disk. Reading a weight from one of
them would give zeros, and classifying must never need to.
"""
from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

SD_IN = "model.diffusion_model.input_blocks.0.0.weight"
SD_CROSS = "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"
SDXL_ADD = "model.diffusion_model.label_emb.0.0.weight"
VAE_KEY = "first_stage_model.decoder.conv_in.weight"

FAMILY_KEYS: dict[str, dict[str, list[int]]] = {
    "sd1": {SD_IN: [320, 4, 3, 3], SD_CROSS: [320, 768], VAE_KEY: [512, 4, 3, 3]},
    "sd2": {SD_IN: [320, 4, 3, 3], SD_CROSS: [320, 1024], VAE_KEY: [512, 4, 3, 3]},
    "sdxl": {SD_IN: [320, 4, 3, 3], SDXL_ADD: [1280, 2816], VAE_KEY: [512, 4, 3, 3]},
    "sd1-inpaint": {SD_IN: [320, 9, 3, 3], SD_CROSS: [320, 768]},
    "flux1": {"double_blocks.0.img_attn.qkv.weight": [9216, 3072],
              "single_blocks.0.linear1.weight": [21504, 3072]},
    "flux1-comfy": {"model.diffusion_model.double_blocks.0.img_attn.qkv.weight": [9216, 3072]},
    "flux2": {"double_blocks.0.img_attn.qkv.weight": [18432, 6144],
              "double_stream_modulation_img.lin.weight": [36864, 6144]},
    "sd3": {"model.diffusion_model.joint_blocks.0.context_block.attn.qkv.weight": [4608, 1536]},
    "qwen-image": {"txt_norm.weight": [3584], "transformer_blocks.0.img_mod.1.weight": [18432, 3072],
                   "img_in.weight": [3072, 64]},
    "lora": {"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": [8, 320]},
}


def write_safetensors(path: Path, shapes: dict[str, list[int]], dtype: str = "F16") -> Path:
    """A valid safetensors file whose tensors are all zeros, stored as a sparse hole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, shape in shapes.items():
        size = int(np.prod(shape)) * 2
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        f.truncate(8 + len(raw) + offset)
    return path


def checkpoint(path: Path, family: str) -> Path:
    return write_safetensors(path, FAMILY_KEYS[family])


def diffusers_folder(path: Path, pipeline: str, text_width: int = 768) -> Path:
    """The configs a diffusers pipeline folder carries (weights are not needed to classify)."""
    (path / "text_encoder").mkdir(parents=True, exist_ok=True)
    (path / "unet").mkdir(exist_ok=True)
    (path / "model_index.json").write_text(json.dumps({"_class_name": pipeline}))
    (path / "text_encoder" / "config.json").write_text(json.dumps({"hidden_size": text_width}))
    (path / "unet" / "config.json").write_text(json.dumps({"in_channels": 4}))
    return path


def build_home(home: Path) -> dict[str, Path]:
    """A home folder with ComfyUI, A1111, InvokeAI, Krita AI Diffusion and Stability Matrix.

    Returns {what the test expects to find: path}; INVOKEAI_ROOT must point at home/'invoke'.
    """
    comfy = home / "ComfyUI" / "models"
    a1111 = home / "stable-diffusion-webui" / "models" / "Stable-diffusion"
    shared = home / "Shared Models" / "checkpoints"      # mapped in by extra_model_paths.yaml
    (home / "ComfyUI").mkdir(parents=True)
    (home / "ComfyUI" / "extra_model_paths.yaml").write_text(
        "a111:\n    base_path: ~/stable-diffusion-webui/\n    checkpoints: models/Stable-diffusion\n"
        "    loras: models/Lora\n"
        "mine:\n    base_path: ../Shared Models\n    checkpoints: |\n        checkpoints\n"
        "        missing-folder\n")
    krita = home / ".local" / "share" / "krita" / "ai_diffusion" / "server" / "ComfyUI" / "models"
    matrix_lib = home / "SM-Library"
    (home / ".config" / "StabilityMatrix").mkdir(parents=True)
    (home / ".config" / "StabilityMatrix" / "library.json").write_text(
        json.dumps({"LibraryPath": str(matrix_lib)}))
    invoke = home / "invoke" / "models"
    found = {
        "comfy-sd1": checkpoint(comfy / "checkpoints" / "dreamshaper_8.safetensors", "sd1"),
        "comfy-flux1": checkpoint(comfy / "diffusion_models" / "flux1-dev.safetensors", "flux1"),
        "comfy-flux1-prefixed": checkpoint(comfy / "unet" / "flux1-schnell.safetensors",
                                           "flux1-comfy"),
        "a1111-sd2": checkpoint(a1111 / "v2-1_768-ema-pruned.safetensors", "sd2"),
        "a1111-sdxl-sub": checkpoint(a1111 / "XL" / "juggernautXL.safetensors", "sdxl"),
        "shared-sd1": checkpoint(shared / "deliberate.safetensors", "sd1"),
        "krita-sdxl": checkpoint(krita / "checkpoints" / "realvisxl.safetensors", "sdxl"),
        "matrix-sd3": checkpoint(matrix_lib / "Models" / "StableDiffusion" / "sd3.5.safetensors",
                                 "sd3"),
        "matrix-qwen": checkpoint(matrix_lib / "Models" / "DiffusionModels" /
                                  "qwen_image.safetensors", "qwen-image"),
        "invoke-sdxl": diffusers_folder(invoke / "sdxl" / "main" / "sdxl-base",
                                        "StableDiffusionXLPipeline", 768),
        "invoke-sd2": diffusers_folder(invoke / "sd-2" / "main" / "sd21", "StableDiffusionPipeline",
                                       1024),
        "invoke-flux2": checkpoint(invoke / "flux" / "main" / "flux2-dev.safetensors", "flux2"),
    }
    # Present but not whole diffusion models: never listed.
    checkpoint(comfy / "loras" / "detail.safetensors", "lora")
    checkpoint(comfy / "checkpoints" / "misplaced_lora.safetensors", "lora")
    checkpoint(a1111 / "inpaint.safetensors", "sd1-inpaint")
    (comfy / "checkpoints" / "old.ckpt").write_bytes(b"pickle")
    (comfy / "checkpoints" / "broken.safetensors").write_bytes(b"\xff" * 16)
    return found
