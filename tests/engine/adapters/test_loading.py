"""`load(spec)`: diffusers folders, original-layout single files, hub ids offline, bad input."""
import json
import shutil
from pathlib import Path

import pytest
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from safetensors.torch import load_file, save_file
from transformers import CLIPTextModel, CLIPTextModelWithProjection

from engine.adapters import architectures, load_adapter
from engine.adapters.base import Window
from engine.adapters.loading import load
from engine.api import EngineError, RenderParams
from ldm_layout import clip_to_ldm, clip_to_open_clip, unet_to_ldm, vae_to_ldm


def _state(folder, sub, cls):
    return cls.from_pretrained(folder, subfolder=sub).state_dict()


def write_single_file(folder: Path, out: Path, text_layout: str = "clip") -> Path:
    """The saved pipeline's weights in the original single-file layout (A1111 / ComfyUI)."""
    unet_cfg = json.loads((folder / "unet" / "config.json").read_text())
    vae_cfg = json.loads((folder / "vae" / "config.json").read_text())
    ckpt = {}
    ckpt.update(unet_to_ldm(_state(folder, "unet", UNet2DConditionModel), unet_cfg))
    ckpt.update(vae_to_ldm(_state(folder, "vae", AutoencoderKL), vae_cfg))
    te = _state(folder, "text_encoder", CLIPTextModel)
    if (folder / "text_encoder_2").is_dir():
        ckpt.update(clip_to_ldm(te, "conditioner.embedders.0.transformer."))
        ckpt.update(clip_to_open_clip(_state(folder, "text_encoder_2", CLIPTextModelWithProjection),
                                      "conditioner.embedders.1.model."))
    elif text_layout == "open_clip":  # SD 2.x
        ckpt.update(clip_to_open_clip(te, "cond_stage_model.model."))
    else:
        ckpt.update(clip_to_ldm(te, "cond_stage_model.transformer."))
    save_file({k: v.contiguous() for k, v in ckpt.items()}, str(out))
    return out


def config_only(folder: Path, dst: Path) -> Path:
    """A copy of the pipeline folder without any weights: configs and tokenizers only."""
    shutil.copytree(folder, dst, ignore=shutil.ignore_patterns("*.safetensors", "*.bin"))
    return dst


def _same_weights(a, b):
    for name, module in (("unet", "unet"), ("vae", "vae")):
        sa, sb = getattr(a, module).state_dict(), getattr(b, module).state_dict()
        assert sa.keys() == sb.keys()
        for k in sa:
            assert torch.equal(sa[k], sb[k]), f"{name}.{k}"
    for ea, eb in zip(a.text_encoders, b.text_encoders, strict=True):
        sa, sb = ea.state_dict(), eb.state_dict()
        assert sa.keys() == sb.keys()
        for k in sa:
            assert torch.equal(sa[k], sb[k]), k


def test_folder_with_and_without_model_index(sd_folder, tmp_path):
    a = load(str(sd_folder))
    bare = tmp_path / "bare"
    shutil.copytree(sd_folder, bare)
    (bare / "model_index.json").unlink()
    b = load_adapter(str(bare), torch.device("cpu"), torch.float32)
    _same_weights(a, b)
    assert b.scheduler_config["prediction_type"] == "epsilon"


@pytest.mark.parametrize("case", ["sd1", "sd2", "sdxl"])
def test_single_file_loads_the_same_model(case, sd_folder, sdxl_folder, tmp_path):
    folder = sdxl_folder if case == "sdxl" else sd_folder
    layout = "open_clip" if case == "sd2" else "clip"
    ckpt = write_single_file(folder, tmp_path / "model.safetensors", layout)
    configs = config_only(folder, tmp_path / "configs")
    single = load(str(ckpt), config=str(configs))
    reference = load(str(folder))
    _same_weights(single, reference)
    cond = single.conditioning(RenderParams(prompt="the sky"), torch.zeros(1, 3, 128, 128))
    torch.manual_seed(0)
    x = torch.randn(2, 4, 16, 16)
    wins = [Window(0, 0, 16, 16, 32, 32), Window(16, 16, 16, 16, 32, 32)]
    torch.testing.assert_close(single.predict_x0(x, torch.tensor(300), 0.7, wins, cond),
                               reference.predict_x0(x, torch.tensor(300), 0.7, wins, cond))


def test_single_file_missing_weights_is_a_clear_error(sd_folder, tmp_path):
    ckpt = write_single_file(sd_folder, tmp_path / "model.safetensors")
    state = load_file(str(ckpt))
    del state["model.diffusion_model.out.2.weight"]
    save_file(state, str(ckpt))
    with pytest.raises(EngineError, match="does not match"):
        load(str(ckpt), config=str(config_only(sd_folder, tmp_path / "configs")))


def test_single_file_of_unknown_family_is_a_clear_error(sd_folder, tmp_path):
    # Without a config folder the family is recognised from the weights; a tiny UNet is none.
    ckpt = write_single_file(sd_folder, tmp_path / "model.safetensors")
    with pytest.raises(EngineError, match="unrecognised|unknown cross-attention"):
        load(str(ckpt))


def test_bad_files_are_clear_errors(tmp_path):
    with pytest.raises(EngineError, match="not found"):
        load(str(tmp_path / "nope.safetensors"))
    pickle = tmp_path / "model.ckpt"
    pickle.write_bytes(b"\x80\x04junk")
    with pytest.raises(EngineError, match="only .safetensors"):
        load(str(pickle))
    truncated = tmp_path / "cut.safetensors"
    save_file({"a": torch.zeros(1000)}, str(truncated))
    truncated.write_bytes(truncated.read_bytes()[:100])
    with pytest.raises(EngineError, match="cannot load"):
        load(str(truncated))
    empty = tmp_path / "folder"
    empty.mkdir()
    with pytest.raises(EngineError, match="not a diffusers model folder"):
        load(str(empty))


def test_hub_id_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(EngineError, match="HF_HUB_OFFLINE"):
        load("seamwise-tests/not-a-cached-model")


def test_family_detection_from_checkpoint_keys():
    u = "model.diffusion_model."
    base = {u + "input_blocks.0.0.weight": torch.zeros(320, 4, 3, 3)}
    attn = u + "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"
    assert architectures.detect_family({**base, attn: torch.zeros(320, 768)}) == "sd1"
    assert architectures.detect_family({**base, attn: torch.zeros(320, 1024)}) == "sd2"
    assert architectures.detect_family({**base, u + "label_emb.0.0.weight": torch.zeros(1280, 2816)}) == "sdxl"
    with pytest.raises(ValueError, match="refiner"):
        architectures.detect_family({**base, u + "label_emb.0.0.weight": torch.zeros(1280, 2560)})
    with pytest.raises(ValueError, match="inpainting"):
        architectures.detect_family({u + "input_blocks.0.0.weight": torch.zeros(320, 9, 3, 3)})


@pytest.mark.parametrize("name, unet, vae, te, te2", [
    ("sd1", 859_520_964, 83_653_863, 123_060_480, None),
    ("sd2", 865_910_724, 83_653_863, 340_387_840, None),
    ("sdxl", 2_567_463_684, 83_653_863, 123_060_480, 694_659_840),
])
def test_bundled_configs_build_the_published_architectures(name, unet, vae, te, te2):
    """Parameter counts of the reference releases (built on the meta device: no memory)."""
    from transformers import CLIPTextConfig
    cfg = architectures.family(name)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    with torch.device("meta"):
        assert count(UNet2DConditionModel(**cfg["unet"])) == unet
        assert count(AutoencoderKL(**cfg["vae"])) == vae
        assert count(CLIPTextModel(CLIPTextConfig(**cfg["text_encoder"]))) == te
        if te2:
            assert count(CLIPTextModelWithProjection(CLIPTextConfig(**cfg["text_encoder_2"]))) == te2


def test_bundled_clip_tokenizer_matches_clip():
    from engine.adapters.clip_vocab import clip_tokenizer
    tok = clip_tokenizer()
    assert len(tok) == 49408
    assert tok("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    padded = clip_tokenizer(pad_token="!")("a cat", padding="max_length", max_length=6).input_ids
    assert padded == [49406, 320, 2368, 49407, 0, 0]


def test_single_file_of_a_recognised_family_needs_nothing_else(sd_folder, tmp_path, monkeypatch):
    """Family recognised from the weights → bundled configs and CLIP tokenizer, no folder, no
    network. (A tiny stand-in family: the released ones are gigabytes.)"""
    read = lambda sub, f="config.json": json.loads((sd_folder / sub / f).read_text())  # noqa: E731
    monkeypatch.setitem(architectures.FAMILIES, "tiny", dict(
        unet=read("unet"), vae=read("vae"), text_encoder=read("text_encoder"),
        scheduler=read("scheduler", "scheduler_config.json"),
        pad_tokens=dict(tokenizer="<|endoftext|>")))
    monkeypatch.setattr(architectures, "detect_family", lambda checkpoint: "tiny")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    adapter = load(str(write_single_file(sd_folder, tmp_path / "model.safetensors")))
    _same_weights(adapter, load(str(sd_folder)))
    assert adapter.tokenizers[0]("a photo of a cat").input_ids[1:3] == [320, 1125]


def test_prediction_type_from_sibling_yaml_marker_or_argument(sd_folder, tmp_path):
    ckpt = write_single_file(sd_folder, tmp_path / "model.safetensors")
    configs = str(config_only(sd_folder, tmp_path / "configs"))
    assert load(str(ckpt), config=configs).prediction_type == "epsilon"
    (tmp_path / "model.yaml").write_text("model:\n  params:\n    parameterization: \"v\"\n")
    assert load(str(ckpt), config=configs).prediction_type == "v_prediction"
    assert load(str(ckpt), config=configs, prediction_type="epsilon").prediction_type == "epsilon"
    (tmp_path / "model.yaml").unlink()
    state = load_file(str(ckpt))
    state["v_pred"] = torch.zeros(0)
    save_file(state, str(ckpt))
    assert load(str(ckpt), config=configs).prediction_type == "v_prediction"


def test_folder_with_fp16_variant_weights_only(sd_folder, tmp_path):
    variant = tmp_path / "variant"
    shutil.copytree(sd_folder, variant)
    for f in variant.glob("*/*.safetensors"):
        f.rename(f.with_name(f.name.replace(".safetensors", ".fp16.safetensors")))
    _same_weights(load(str(variant)), load(str(sd_folder)))
