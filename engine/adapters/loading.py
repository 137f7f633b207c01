"""Turn a model spec (folder, .safetensors file or hub id) into a Stable Diffusion adapter.

Three sources, one result:
- a local diffusers folder (`model_index.json`, or `unet/ vae/ text_encoder/ tokenizer/`);
- a single original-layout `.safetensors` checkpoint (the A1111/ComfyUI format). Its weights are
  converted with diffusers' own converters; the architecture and tokenizers come from `config` (a
  diffusers folder whose configs describe it, weights there are ignored) or from the family
  recognised in the checkpoint (`architectures.py`, `clip_vocab.py`) — never from the network;
- a hub id ("owner/name"), only where the network may be used; offline (HF_HUB_OFFLINE=1) an id
  already in the local cache still loads, anything else is a clear error.

Weights are loaded strictly: a key the architecture expects but the checkpoint lacks is an error,
not a silently random layer.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Mapping, Optional

import torch

from engine.adapters import architectures
from engine.adapters.sd import StableDiffusionAdapter
from engine.types import EngineError

_COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer")


def load(spec: str, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32, *,
         config: Optional[str] = None, prediction_type: Optional[str] = None
         ) -> StableDiffusionAdapter:
    """Load an SD 1.x/2.x or SDXL model for inference.

    `config`: for single files, a diffusers folder describing the architecture (and holding the
    tokenizers). `prediction_type` overrides the scheduler's ("epsilon" / "v_prediction"), e.g.
    for an SD 2.x 512 px checkpoint, which its weights cannot tell apart from the 768 px v model.
    """
    device = torch.device(device)
    path = Path(os.path.expanduser(spec))
    try:
        if path.is_dir():
            adapter = _load_folder(path, device, dtype, prediction_type)
        elif path.is_file():
            adapter = _load_single_file(path, device, dtype, config, prediction_type)
        elif _looks_like_hub_id(spec):
            adapter = _load_folder(_fetch_from_hub(spec, dtype), device, dtype, prediction_type)
        else:
            raise EngineError(f"model not found: {spec!r} is neither a file nor a folder")
    except EngineError:
        raise
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        raise EngineError(f"cannot load model {spec!r}: {e}") from e
    return adapter


# -- diffusers folders ----------------------------------------------------------------------------

def _is_diffusers_folder(path: Path) -> bool:
    return (path / "model_index.json").is_file() or all((path / c).is_dir() for c in _COMPONENTS)


def _variant(folder: Path) -> Optional[str]:
    """"fp16" where a component ships only fp16-variant weights (common in hub repos)."""
    names = [p.name for p in folder.glob("*") if p.is_file()
             and p.name.startswith(("diffusion_pytorch_model", "model"))
             and p.name.endswith((".safetensors", ".bin", ".safetensors.index.json",
                                  ".bin.index.json"))]
    if any(".fp16" not in n for n in names):
        return None
    return "fp16" if names else None


def _scheduler_config(path: Path, prediction_type: Optional[str]) -> dict:
    file = path / "scheduler" / "scheduler_config.json"
    cfg = json.loads(file.read_text()) if file.is_file() else dict(architectures.SD_SCHEDULER)
    if prediction_type:
        cfg["prediction_type"] = prediction_type
    return cfg


def _load_folder(path: Path, device: torch.device, dtype: torch.dtype,
                 prediction_type: Optional[str]) -> StableDiffusionAdapter:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    if not _is_diffusers_folder(path):
        raise EngineError(f"{path} is not a diffusers model folder (expected model_index.json "
                          "or unet/, vae/, text_encoder/ and tokenizer/ subfolders)")
    missing = [c for c in _COMPONENTS if not (path / c).is_dir()]
    if missing:
        raise EngineError(f"{path} lacks {', '.join(missing)} (only complete SD/SDXL pipelines "
                          "are supported)")

    def model(cls, sub):
        return cls.from_pretrained(path, subfolder=sub, torch_dtype=dtype, local_files_only=True,
                                   variant=_variant(path / sub))

    unet = model(UNet2DConditionModel, "unet")
    vae = model(AutoencoderKL, "vae")
    encoders = [model(CLIPTextModel, "text_encoder")]
    tokenizers = [CLIPTokenizer.from_pretrained(path, subfolder="tokenizer", local_files_only=True)]
    if (path / "text_encoder_2").is_dir():
        encoders.append(model(CLIPTextModelWithProjection, "text_encoder_2"))
        tokenizers.append(CLIPTokenizer.from_pretrained(path, subfolder="tokenizer_2",
                                                        local_files_only=True))
    return _assemble(unet, vae, encoders, tokenizers, _scheduler_config(path, prediction_type),
                     device, dtype, str(path))


def _assemble(unet, vae, encoders, tokenizers, scheduler_config, device, dtype, source
              ) -> StableDiffusionAdapter:
    unet.to(device=device, dtype=dtype).eval().requires_grad_(False)
    upcast = bool(getattr(vae.config, "force_upcast", False))
    vae.to(device=device, dtype=torch.float32 if upcast else dtype).eval().requires_grad_(False)
    for encoder in encoders:
        encoder.to(device=device, dtype=dtype).eval().requires_grad_(False)
    return StableDiffusionAdapter(unet=unet, vae=vae, text_encoders=encoders,
                                  tokenizers=tokenizers, scheduler_config=scheduler_config,
                                  device=device, dtype=dtype, source=source)


# -- hub ids --------------------------------------------------------------------------------------

def _looks_like_hub_id(spec: str) -> bool:
    parts = spec.split("/")
    return (len(parts) == 2 and all(parts) and not spec.startswith((".", "~"))
            and not Path(spec).suffix)


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _fetch_from_hub(repo_id: str, dtype: torch.dtype) -> Path:
    """The repo's folder in the local Hugging Face cache, downloading only where allowed."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    weights = "*.fp16.safetensors" if dtype == torch.float16 else "*[!6].safetensors"
    patterns = ["model_index.json", "*/config.json", "scheduler/*", "tokenizer*/*",
                f"unet/{weights}", f"vae/{weights}", f"text_encoder*/{weights}"]
    try:
        return Path(snapshot_download(repo_id, allow_patterns=patterns, local_files_only=True))
    except LocalEntryNotFoundError:
        pass
    if _offline():
        raise EngineError(f"model {repo_id!r} is not a local file or folder and not in the local "
                          "Hugging Face cache, and downloads are disabled (HF_HUB_OFFLINE=1); "
                          "pass the path of a diffusers folder or a .safetensors checkpoint")
    try:
        return Path(snapshot_download(repo_id, allow_patterns=patterns))
    except Exception as e:  # network, auth, missing repo: all end the same way for the user
        raise EngineError(f"cannot download model {repo_id!r}: {e}") from e


# -- single-file checkpoints ----------------------------------------------------------------------

_CLIP_PREFIXES = ("cond_stage_model.transformer.", "conditioner.embedders.0.transformer.")
_OPEN_CLIP_PREFIXES = {"text_encoder": "cond_stage_model.model.",
                       "text_encoder_2": "conditioner.embedders.1.model."}
# Present in original checkpoints, absent from diffusers/transformers models by design.
_IGNORABLE_SUFFIXES = ("position_ids", "text_projection.weight", "logit_scale")


def _read_configs(folder: Path) -> dict:
    def read(name, file="config.json"):
        f = folder / name / file
        return json.loads(f.read_text()) if f.is_file() else None

    cfg = {"unet": read("unet"), "vae": read("vae"), "text_encoder": read("text_encoder"),
           "scheduler": read("scheduler", "scheduler_config.json")}
    if (folder / "text_encoder_2").is_dir():
        cfg["text_encoder_2"] = read("text_encoder_2")
    missing = [k for k, v in cfg.items() if v is None and k != "scheduler"]
    if missing:
        raise EngineError(f"config folder {folder} lacks {', '.join(missing)} config.json")
    if cfg["scheduler"] is None:
        cfg["scheduler"] = dict(architectures.SD_SCHEDULER)
    return cfg


def _strict_load(model: torch.nn.Module, state: Mapping[str, torch.Tensor], what: str,
                 ignorable: tuple[str, ...] = (), assign: bool = False) -> None:
    """Load every expected tensor or explain which ones are missing; `assign` for meta models."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(k for k in set(state) - set(expected) if not k.endswith(ignorable))
    if missing or unexpected:
        detail = (f"{len(missing)} missing (e.g. {missing[:3]})" if missing else "") + \
                 (f" {len(unexpected)} unexpected (e.g. {unexpected[:3]})" if unexpected else "")
        raise EngineError(f"the checkpoint's {what} does not match its architecture:{detail}")
    wrong = [k for k in expected if expected[k].shape != state[k].shape]
    if wrong:
        k = wrong[0]
        raise EngineError(f"the checkpoint's {what} does not match its architecture: {k} has "
                          f"shape {tuple(state[k].shape)}, expected {tuple(expected[k].shape)}")
    model.load_state_dict({k: state[k] for k in expected}, strict=True, assign=assign)


def _text_encoder(name: str, cls, config: dict, checkpoint: Mapping[str, torch.Tensor]):
    from diffusers.loaders.single_file_utils import (convert_ldm_clip_checkpoint,
                                                     convert_open_clip_checkpoint)
    from transformers import CLIPTextConfig

    model = cls(CLIPTextConfig(**{k: v for k, v in config.items() if not k.startswith("_")}))
    clip_prefix = _CLIP_PREFIXES[0] if name == "text_encoder" else None
    open_prefix = _OPEN_CLIP_PREFIXES[name]
    if name == "text_encoder" and any(k.startswith(_CLIP_PREFIXES) for k in checkpoint):
        state = convert_ldm_clip_checkpoint(checkpoint)
    elif any(k.startswith(open_prefix) for k in checkpoint):
        state = convert_open_clip_checkpoint(model, checkpoint, prefix=open_prefix)
    else:
        raise EngineError(f"the checkpoint holds no {name} weights (expected keys under "
                          f"{clip_prefix or open_prefix!r})")
    if not hasattr(model, "text_model"):  # transformers ≥ 5.6 flattened CLIPTextModel
        state = {k.removeprefix("text_model."): v for k, v in state.items()}
    ignorable = _IGNORABLE_SUFFIXES if name == "text_encoder" else ("position_ids",)
    _strict_load(model, state, name, ignorable)
    return model


def _tokenizer(folder: Optional[Path], name: str, pad_token: Optional[str]):
    """The config folder's tokenizer, else CLIP's rebuilt from the bundled merges."""
    from transformers import CLIPTokenizer

    from engine.adapters.clip_vocab import clip_tokenizer

    if folder is not None:
        if not (folder / name).is_dir():
            raise EngineError(f"config folder {folder} has no {name}/")
        return CLIPTokenizer.from_pretrained(folder, subfolder=name, local_files_only=True)
    return clip_tokenizer(pad_token=pad_token)


def _declared_prediction(path: Path, checkpoint: Mapping[str, torch.Tensor]) -> Optional[str]:
    """What the checkpoint says it predicts, where it says so: an original config next to it
    (`model.safetensors` + `model.yaml`, the A1111 convention; `parameterization: "v"`), or the
    `v_pred` marker key that v-prediction finetunes carry. SD 2.x 512 px (epsilon) and 768 px
    (v) checkpoints have identical weights layouts, so this is the only offline evidence."""
    import yaml

    side = path.with_suffix(".yaml")
    if side.is_file():
        try:
            original = yaml.safe_load(side.read_text()) or {}
            params = original.get("model", {}).get("params", {}) or {}
        except (yaml.YAMLError, AttributeError) as e:
            raise EngineError(f"{side.name}: not a readable original config ({e})") from e
        return "v_prediction" if params.get("parameterization") == "v" else "epsilon"
    if "v_pred" in checkpoint:
        return "v_prediction"
    return None


def _load_single_file(path: Path, device: torch.device, dtype: torch.dtype,
                      config: Optional[str], prediction_type: Optional[str]
                      ) -> StableDiffusionAdapter:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.loaders.single_file_utils import (convert_ldm_unet_checkpoint,
                                                     convert_ldm_vae_checkpoint)
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    if path.suffix != ".safetensors":
        raise EngineError(f"{path.name}: only .safetensors checkpoints are loaded (pickled "
                          ".ckpt/.pt files can run arbitrary code)")
    try:
        checkpoint = load_file(str(path))
    except SafetensorError as e:
        raise EngineError(f"cannot load model {path.name}: not a readable .safetensors file "
                          f"({e})") from e
    while "state_dict" in checkpoint:  # some exporters nest everything one level down
        checkpoint = checkpoint["state_dict"]

    folder = Path(config).expanduser() if config else None
    if folder is not None:
        cfg, pads = _read_configs(folder), {}
    else:
        try:
            name = architectures.detect_family(checkpoint)
        except ValueError as e:
            raise EngineError(f"{path.name}: {e}") from e
        cfg = architectures.family(name)
        pads = cfg.pop("pad_tokens")
    scheduler = dict(cfg["scheduler"])
    scheduler["prediction_type"] = (prediction_type or _declared_prediction(path, checkpoint)
                                    or scheduler.get("prediction_type", "epsilon"))

    def strip(d):
        return {k: v for k, v in d.items() if not k.startswith("_")}

    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(strip(cfg["unet"]))
        vae = AutoencoderKL.from_config(strip(cfg["vae"]))
    # Built on the meta device and filled by assignment: no random init of billions of weights.
    _strict_load(unet, convert_ldm_unet_checkpoint(checkpoint, dict(unet.config)), "UNet",
                 assign=True)
    _strict_load(vae, convert_ldm_vae_checkpoint(checkpoint, dict(vae.config)), "VAE",
                 assign=True)

    encoders = [_text_encoder("text_encoder", CLIPTextModel, cfg["text_encoder"], checkpoint)]
    tokenizers = [_tokenizer(folder, "tokenizer", pads.get("tokenizer"))]
    if "text_encoder_2" in cfg:
        encoders.append(_text_encoder("text_encoder_2", CLIPTextModelWithProjection,
                                      cfg["text_encoder_2"], checkpoint))
        tokenizers.append(_tokenizer(folder, "tokenizer_2", pads.get("tokenizer_2")))
    return _assemble(unet, vae, encoders, tokenizers, scheduler, device, dtype, str(path))
