"""What a render does about colour: the document's profile, the model's space, the conversions.

A model was trained on pixels of one colour space (sRGB for the bundled model and the SD
family); handing it ProPhoto numbers makes it "correct" colours that were right. So the render
converts the document's pixels into the model's space before the model sees them and back
after, in float, with LittleCMS (relative colorimetric, black-point compensation).

Out-of-gamut colours: the document → model conversion is unbounded, so a ProPhoto green
outside sRGB arrives as values beyond [0, 1]. The model sees them clipped to its range; what
the clip removed is added back to the model's output before converting back, so a pixel the
model left alone returns to its own colour, and an edited one keeps its saturation beyond sRGB.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch

from engine.colour import lcms
from engine.colour.profiles import SPACES, SRGB, canonical, display_name, standard_profile

_KNOWN = "sRGB IEC61966-2.1, Adobe RGB (1998), ProPhoto RGB, Display P3 and their linear variants"
_SCALE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0, np.dtype(np.float32): 1.0}


class ColourError(ValueError):
    """A colour space a model declares is not one the engine can build."""


def model_space(declared: Optional[str]) -> tuple[str, bool]:
    """(standard space, linear?) for what a model declares; sRGB when it declares nothing."""
    if not declared:
        return SRGB, False
    found = canonical(declared)
    if found is None or SPACES[found[0]].primaries is None:
        raise ColourError(f"model colour space {declared!r} is not an RGB space the engine knows "
                          f"({_KNOWN})")
    return found


@dataclass
class ColourPlan:
    """The conversions of one render; `to_model` is None when the pixels go to the model as
    they are (the document is already in the model's space, or its profile is unusable)."""
    document: str
    model: str
    to_model: Optional[lcms.FloatTransform] = None
    from_model: Optional[lcms.FloatTransform] = None
    warnings: list[str] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.to_model is not None

    def stats(self) -> dict:
        return {"document": self.document, "model": self.model, "converted": self.active}

    def model_unit(self, rgb: np.ndarray) -> torch.Tensor:
        """H x W x 3 document pixels (uint8/uint16/float32) → [1, 3, H, W] float32 in the
        model's space, 0..1 nominal, unclipped."""
        unit = np.asarray(rgb, dtype=np.float32, order="C")
        if unit is rgb or np.shares_memory(unit, rgb):
            unit = unit.copy()
        if rgb.dtype != np.float32:
            unit *= np.float32(1.0 / _SCALE[rgb.dtype])
        self.to_model(unit, out=unit)
        return torch.from_numpy(unit).permute(2, 0, 1)[None]

    def document_unit(self, t: torch.Tensor) -> torch.Tensor:
        """[1, 3, H, W] in the model's space (consumed) → the same in the document's space."""
        hwc = t[0].permute(1, 2, 0).contiguous().numpy()
        self.from_model(hwc, out=hwc)
        return torch.from_numpy(hwc).permute(2, 0, 1)[None]

    def document_change(self, blended: torch.Tensor, base: torch.Tensor,
                        original: torch.Tensor) -> torch.Tensor:
        """`original` (the document's own pixels, 0..1 nominal, consumed) plus what the model
        changed, measured in the document's space: original + B(blended) − B(base), B the
        conversion back. A pixel the model left alone (blended = base) is then the document's
        own value exactly, whatever the float round trip's own error at extreme colours."""
        change = self.document_unit(blended).sub_(self.document_unit(base))
        return original.add_(change)


# Changes smaller than this (in the model's 0..1 range) are float round-off of the render's own
# arithmetic, not edits: a fifteenth of a 16-bit level. Kept, they would come back as several
# 16-bit levels near black in pure-gamma documents (Adobe RGB, ProPhoto), whose curves are
# infinitely steep at 0.
ROUND_OFF = 1e-6


def blend_unclipped(out: torch.Tensor, base: torch.Tensor,
                    mask: Optional[torch.Tensor]) -> torch.Tensor:
    """The model's output (in its range, consumed) blended over the unclipped input `base` by
    the mask: base + mask · (out − clip(base)). Where the model kept what it saw, this is
    `base` itself, out-of-gamut part included."""
    out = out.sub_(base.clamp(0, 1))
    out.masked_fill_(out.abs() <= ROUND_OFF, 0.0)
    if mask is not None:
        out = out.mul_(mask)
    return out.add_(base)


def plan(icc: Optional[bytes], profile_name: Optional[str], dtype: np.dtype,
         model_declared: Optional[str] = None) -> ColourPlan:
    """See `_plan`; without LittleCMS every render goes on unmanaged, with a warning."""
    try:
        return _plan(icc, profile_name, dtype, model_declared)
    except lcms.ColourEngineMissing as e:
        return ColourPlan(profile_name or "unknown", model_declared or SRGB,
                          warnings=[f"{e}; the pixels went to the model as they are"])


def _plan(icc: Optional[bytes], profile_name: Optional[str], dtype: np.dtype,
          model_declared: Optional[str] = None) -> ColourPlan:
    """The conversions for a document whose profile is `icc` (embedded bytes, preferred) or
    `profile_name` (what Photoshop calls it), at `dtype` (float32 = linear light), for a model
    that declares `model_declared`. Untagged 8/16-bit pixels are taken as sRGB, untagged float
    as linear sRGB. A profile that cannot be used leaves the pixels as they are, with a warning
    saying so."""
    space, linear = model_space(model_declared)
    model = display_name(space, linear)
    is_float = np.dtype(dtype) == np.float32
    warnings: list[str] = []
    doc, doc_name = None, None
    if icc:
        try:
            doc = lcms.Profile.from_bytes(bytes(icc))
            doc_name = doc.description or "embedded profile"
        except ValueError:
            warnings.append("the image's embedded ICC profile cannot be read; its pixels went to "
                            "the model as they are, so colours may shift")
    elif profile_name:
        found = canonical(profile_name)
        if found is None:
            warnings.append(f"the colour profile {profile_name!r} is not one the server knows "
                            f"({_KNOWN}); the pixels went to the model as they are, so colours "
                            "may shift")
        else:
            doc = standard_profile(found[0], found[1] or is_float)
            doc_name = display_name(found[0], found[1] or is_float)
    else:
        doc = standard_profile(SRGB, is_float)
        doc_name = display_name(SRGB, is_float)
    if doc is not None and doc.colour_space != lcms.SIG_RGB:
        warnings.append(f"the colour profile {doc_name!r} is not an RGB profile; the RGB pixels "
                        "went to the model as they are")
        doc = None
    if doc is None:
        return ColourPlan(profile_name or "unknown", model, warnings=warnings)
    if is_float and icc and doc.is_matrix_shaper:
        doc = doc.with_linear_curves()   # 32-bit pixels are linear light (PROTOCOL.md)
    target = standard_profile(space, linear)
    if doc.to_bytes() == target.to_bytes():
        return ColourPlan(doc_name, model, warnings=warnings)
    try:
        to_model = lcms.FloatTransform(doc, target)
        from_model = lcms.FloatTransform(target, doc)
    except ValueError as e:
        warnings.append(f"{e}; the pixels went to the model as they are")
        return ColourPlan(doc_name, model, warnings=warnings)
    return ColourPlan(doc_name, model, to_model, from_model, warnings)
