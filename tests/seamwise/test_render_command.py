"""`seamwise render` as a user runs it: a real subprocess, real files, the bundled model."""
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import ImageCms

from engine.imageio import Picture, read_image, write_image

ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def seamwise(*args, timeout=600):
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "seamwise", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=env)


def photo(shape, dtype=np.uint16, seed=0):
    """A smooth gradient with grain: enough structure that a restoration model changes it."""
    h, w, c = shape
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    planes = [0.2 + 0.6 * x, 0.3 + 0.4 * y, 0.5 + 0.3 * np.sin(6 * x * y), 0.5 + 0.5 * (x > 0.5)]
    base = np.stack(planes[:c], -1)
    rng = np.random.default_rng(seed)
    base = np.clip(base + rng.normal(0, 0.03, base.shape), 0, 1)
    top = np.iinfo(dtype).max if dtype != np.float32 else 1.0
    return (base * top).astype(dtype)


def test_help_documents_every_option():
    out = seamwise("render", "--help")
    assert out.returncode == 0
    for flag in ("--scale", "--strength", "--steps", "--seed", "--tile", "--overlap", "--strategy",
                 "--mask", "--seam-mask", "--model"):
        assert flag in out.stdout
    top = seamwise("--help")
    assert top.returncode == 0 and "render" in top.stdout and "serve" in top.stdout


@pytest.mark.parametrize("content,message", [
    (None, "cannot read"),
    (b"", "empty"),
    (b"definitely not an image", "not a PNG, TIFF or JPEG"),
])
def test_bad_input_exits_with_one_clear_line(tmp_path, content, message):
    src = tmp_path / "in.png"
    if content is not None:
        src.write_bytes(content)
    out = seamwise("render", src, "-o", tmp_path / "out.png")
    assert out.returncode == 2
    assert message in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "out.png").exists()


def test_strip_image_refused(tmp_path):
    write_image(tmp_path / "strip.png", Picture(np.zeros((1, 2000, 3), np.uint8), None, "png"))
    out = seamwise("render", tmp_path / "strip.png", "-o", tmp_path / "o.png")
    assert out.returncode == 2 and "at least" in out.stderr and "Traceback" not in out.stderr


def test_missing_model_file_is_one_line(tmp_path):
    write_image(tmp_path / "in.png", Picture(photo((32, 32, 3), np.uint8), None, "png"))
    out = seamwise("render", tmp_path / "in.png", "-o", tmp_path / "o.png",
                   "--model", tmp_path / "nowhere.safetensors")
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_mask_of_wrong_size_refused(tmp_path):
    write_image(tmp_path / "in.png", Picture(photo((32, 32, 3), np.uint8), None, "png"))
    write_image(tmp_path / "m.png", Picture(np.zeros((20, 32, 1), np.uint8), None, "png"))
    out = seamwise("render", tmp_path / "in.png", "-o", tmp_path / "o.png", "--mask", tmp_path / "m.png")
    assert out.returncode == 2 and "mask is 32x20" in out.stderr


def test_sixteen_bit_jpeg_output_refused(tmp_path):
    write_image(tmp_path / "in.tif", Picture(photo((32, 32, 3)), None, "tiff"))
    out = seamwise("render", tmp_path / "in.tif", "-o", tmp_path / "o.jpg")
    assert out.returncode == 2 and "JPEG" in out.stderr


def test_refine_16bit_tiff_with_mask_keeps_depth_icc_and_outside_pixels(tmp_path):
    src = photo((96, 80, 3))
    write_image(tmp_path / "in.tif", Picture(src, ICC, "tiff"))
    mask = np.zeros((96, 80, 1), np.uint8)
    mask[20:70, 16:60] = 255
    write_image(tmp_path / "mask.png", Picture(mask, None, "png"))
    out = seamwise("render", tmp_path / "in.tif", "-o", tmp_path / "out.tif", "--steps", 2,
                   "--tile", 64, "--mask", tmp_path / "mask.png", "--seam-mask", tmp_path / "seams.png")
    assert out.returncode == 0, out.stderr
    result = read_image(tmp_path / "out.tif")
    assert result.pixels.dtype == np.uint16 and result.pixels.shape == src.shape
    assert result.icc == ICC
    outside = mask[:, :, 0] == 0
    assert np.array_equal(result.pixels[outside], src[outside])
    assert not np.array_equal(result.pixels[30:60, 25:50], src[30:60, 25:50])
    seams = read_image(tmp_path / "seams.png")
    assert seams.pixels.shape[:2] == src.shape[:2]


def test_upscale_x2_png(tmp_path):
    src = photo((48, 40, 4), np.uint8)
    write_image(tmp_path / "in.png", Picture(src, None, "png"))
    out = seamwise("render", tmp_path / "in.png", "-o", tmp_path / "out.png", "--scale", 2,
                   "--steps", 2, "--tile", 64)
    assert out.returncode == 0, out.stderr
    result = read_image(tmp_path / "out.png").pixels
    assert result.shape == (96, 80, 4) and result.dtype == np.uint8
    # alpha is resized, not diffused: it follows the input's alpha closely (grain aside)
    alpha = result[:, :, 3].reshape(48, 2, 40, 2).mean(axis=(1, 3))
    assert np.abs(alpha - src[:, :, 3]).mean() < 4.0


def test_unknown_mechanism_is_one_line(tmp_path):
    write_image(tmp_path / "in.png", Picture(photo((32, 32, 3), np.uint8), None, "png"))
    out = seamwise("render", tmp_path / "in.png", "-o", tmp_path / "o.png",
                   "--mechanism", "wormhole=on")
    assert out.returncode == 2 and "unknown mechanism" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_strength_and_steps_default_to_the_models_recommendation(tmp_path):
    from engine.api import GENERIC_STEPS, GENERIC_STRENGTH, recommended_settings
    from seamwise.cli import build_parser
    from seamwise.render_command import _params

    def params(*argv):
        return _params(build_parser().parse_args(["render", "in.png", "-o", "out.png", *argv]))

    p = params()
    assert (p.strength, p.steps) == recommended_settings("tiny", 1)
    assert (p.strength, p.steps) != (GENERIC_STRENGTH, GENERIC_STEPS)   # the bundled JSON has one
    p = params("--scale", "2")
    assert (p.strength, p.steps) == recommended_settings("tiny", 2)
    p = params("--steps", "5", "--strength", "0.25")
    assert (p.strength, p.steps) == (0.25, 5)
    p = params("--model", str(tmp_path / "some-sd-folder"))
    assert (p.strength, p.steps) == (GENERIC_STRENGTH, GENERIC_STEPS)


def test_guidance_and_negative_prompt_options():
    from seamwise.cli import build_parser
    from seamwise.render_command import _params
    argv = ["render", "in.png", "-o", "out.png", "--prompt", "sky", "--negative-prompt", "haze",
            "--guidance", "5.5"]
    p = _params(build_parser().parse_args(argv))
    assert (p.prompt, p.negative_prompt, p.guidance) == ("sky", "haze", 5.5)
    assert _params(build_parser().parse_args(argv[:4])).guidance is None
    with pytest.raises(SystemExit):
        build_parser().parse_args([*argv[:4], "--guidance", "0.5"])
