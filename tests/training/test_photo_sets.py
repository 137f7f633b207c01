"""The benchmark's photographs: two splits from packages the model never trained on, cut the
same way every time."""
from __future__ import annotations

import numpy as np
from PIL import Image

from training.photo_sets import centre_crop, manifest
from training.train_tiny import WALLPAPER_PACKAGES


def test_heldout_and_validation_come_from_packages_training_never_used():
    m = manifest()
    packages = {m[s]["package"] for s in ("heldout", "validation")}
    assert len(packages) == 2 and not packages & set(WALLPAPER_PACKAGES)
    for split in ("heldout", "validation"):
        photos = m[split]["photos"]
        assert len(photos) >= 6 and all(p["licence"] for p in photos)
        assert len(m[split]["sha256"]) == 64


def test_centre_crop_is_the_middle_of_the_resized_photo():
    a = np.zeros((1000, 3000, 3), np.uint8)
    a[480:520, 1470:1530] = 255          # a bright block at the centre
    out = centre_crop(Image.fromarray(a), 1536, 768, 512)
    assert out.shape == (512, 768, 3)
    ys, xs = np.nonzero(out[..., 0] > 128)
    assert abs(ys.mean() - 255.5) < 2 and abs(xs.mean() - 383.5) < 2
