"""The training script: reproducible from a seed, resumable, and it exports what load_tiny reads."""
import json

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image
from safetensors.torch import load_file

from engine.models.tiny import ResidualToCondition, build_unet, load_tiny, with_output
from training.train_tiny import main as train_main

SMALL = dict(sample_size=32, in_channels=6, out_channels=3, block_out_channels=(32, 32),
             down_block_types=("DownBlock2D", "AttnDownBlock2D"),
             up_block_types=("AttnUpBlock2D", "UpBlock2D"), layers_per_block=1,
             norm_num_groups=8, attention_head_dim=32)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    (root / "train").mkdir()
    (root / "heldout").mkdir()
    names = []
    for name, img in (("astronaut", skimage.data.astronaut()[:160, :160]),
                      ("coffee", skimage.data.coffee()[:128, :192])):
        Image.fromarray(img).save(root / "train" / f"{name}.png")
        names.append(f"{name}.png")
    manifest = {"packages": {}, "train": names, "heldout": []}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def _train(data, out, steps, *extra):
    train_main(["--data", str(data), "--out", str(out), "--steps", str(steps), "--batch", "2",
                "--crop", "32", "--channels", "32", "32", "--warmup", "2", "--threads", "1",
                "--log-every", "1", "--seed", "3", *extra])
    return load_file(str(out / "seamwise-tiny.safetensors"))


def test_residual_output_with_a_zero_correction_is_the_condition():
    unet = build_unet(SMALL)
    torch.nn.init.zeros_(unet.conv_out.weight)
    torch.nn.init.zeros_(unet.conv_out.bias)
    net = with_output(unet, "residual")
    x = torch.randn(2, 6, 32, 32)
    assert isinstance(net, ResidualToCondition)
    assert torch.equal(net(x, torch.tensor([10, 500])).sample, x[:, 3:])
    assert with_output(unet, "prediction") is unet
    with pytest.raises(ValueError, match="unknown model output"):
        with_output(unet, "epsilon-ish")


def test_training_is_reproducible_resumable_and_exports_a_loadable_model(data, tmp_path):
    straight = _train(data, tmp_path / "a", 4)
    again = _train(data, tmp_path / "b", 4)
    assert straight.keys() == again.keys()
    assert all(torch.equal(straight[k], again[k]) for k in straight)

    _train(data, tmp_path / "c", 2)
    resumed = _train(data, tmp_path / "c", 4, "--resume")
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)

    spec = json.loads((tmp_path / "a" / "seamwise-tiny.json").read_text())
    assert spec["output"] == "residual" and spec["meta"]["steps"] == 4
    assert len(spec["meta"]["loss_history"]) == 4
    model = load_tiny(weights=tmp_path / "a" / "seamwise-tiny.safetensors")
    assert isinstance(model.unet, ResidualToCondition)
    x = torch.rand(1, 6, 32, 32) * 2 - 1
    out = model.unet(x, torch.tensor([100])).sample
    # four steps from a zero correction: still close to the condition, but trained away from it
    assert 0 < float((out - x[:, 3:]).abs().mean()) < 0.2
    assert np.isfinite(out.numpy()).all()
