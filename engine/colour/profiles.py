"""The standard working spaces, by the names Photoshop gives them, built by LittleCMS.

The Photoshop panel can only name a document's profile (UXP gives `colorProfileName`, not the
bytes), so the server recognises the standard names and builds those profiles from their
published definitions: white point and primaries (CIE xy) and tone curve. No ICC file is
shipped, so there is no licence to carry. A name not listed here is someone's custom profile,
which the server cannot reconstruct.

32-bit documents in Photoshop are linear light in the profile's primaries; their names carry
" (Linear RGB Profile)", and `linear` variants are built with a gamma-1 curve.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from engine.colour.lcms import Profile

D65 = (0.3127, 0.3290)
D50 = (0.3457, 0.3585)
# LittleCMS parametric curve types: 1 = pure gamma; 4 = IEC 61966-2-1 (sRGB) piecewise.
SRGB_CURVE = (4, (2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045))
LINEAR = (1, (1.0,))


@dataclass(frozen=True)
class Space:
    name: str                  # the name Photoshop shows, and the profile's description
    white: tuple[float, float]
    primaries: tuple | None    # ((xr, yr), (xg, yg), (xb, yb)); None for grey
    curve: tuple


SPACES = {s.name: s for s in (
    # IEC 61966-2-1
    Space("sRGB IEC61966-2.1", D65, ((0.64, 0.33), (0.30, 0.60), (0.15, 0.06)), SRGB_CURVE),
    # Adobe RGB (1998) Color Image Encoding, version 2005-05: gamma 563/256
    Space("Adobe RGB (1998)", D65, ((0.64, 0.33), (0.21, 0.71), (0.15, 0.06)), (1, (563 / 256,))),
    # ROMM RGB primaries (ISO 22028-2) with the pure 1.8 gamma of Photoshop's ProPhoto profile
    Space("ProPhoto RGB", D50, ((0.7347, 0.2653), (0.1596, 0.8404), (0.0366, 0.0001)),
          (1, (1.8,))),
    # DCI-P3 primaries, D65 white, the sRGB curve (Apple's Display P3)
    Space("Display P3", D65, ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060)), SRGB_CURVE),
    Space("Gray Gamma 1.8", D50, None, (1, (1.8,))),
    Space("Gray Gamma 2.2", D50, None, (1, (2.2,))),
)}
SRGB = "sRGB IEC61966-2.1"
LINEAR_SUFFIX = " (Linear RGB Profile)"
_GREY_LINEAR_SUFFIX = " (Linear Gray Profile)"

# Other spellings of the same spaces (lower case, single spaces).
_ALIASES = {
    "srgb": SRGB, "srgb iec61966-2-1": SRGB, "srgb built-in": SRGB, "srgb2014": SRGB,
    "adobe rgb": "Adobe RGB (1998)", "adobergb1998": "Adobe RGB (1998)",
    "prophoto": "ProPhoto RGB", "romm rgb": "ProPhoto RGB", "romm-rgb": "ProPhoto RGB",
    "p3": "Display P3", "display p3": "Display P3",
}


def canonical(name: str) -> tuple[str, bool] | None:
    """(standard space name, linear?) for a profile name, or None for an unknown one."""
    text = re.sub(r"\s+", " ", name or "").strip()
    linear = False
    low = text.lower()
    for suffix in (LINEAR_SUFFIX, _GREY_LINEAR_SUFFIX):
        if low.endswith(suffix.lower()):
            text, linear = text[:-len(suffix)].strip(), True
            low = text.lower()
    for prefix in ("linear ", "lin "):
        if low.startswith(prefix):
            text, linear = text[len(prefix):], True
            low = text.lower()
    if low.endswith(" linear"):
        text, linear = text[:-7], True
        low = text.lower()
    for space in SPACES:
        if space.lower() == low:
            return space, linear
    if low in _ALIASES:
        return _ALIASES[low], linear
    if low in ("gray gamma 1.0", "linear gray", "grey gamma 1.0"):
        return "Gray Gamma 2.2", True
    return None


def display_name(space: str, linear: bool) -> str:
    if not linear:
        return space
    return space + (_GREY_LINEAR_SUFFIX if SPACES[space].primaries is None else LINEAR_SUFFIX)


@lru_cache(maxsize=32)
def standard_profile_bytes(space: str, linear: bool = False) -> bytes:
    """The ICC (v4) bytes of a standard space, built by LittleCMS; cached per process."""
    s = SPACES[space]
    curve = LINEAR if linear else s.curve
    name = display_name(space, linear)
    if s.primaries is None:
        return Profile.grey(s.white, curve, name).to_bytes()
    return Profile.matrix_shaper(s.white, s.primaries, curve, name).to_bytes()


def standard_profile(space: str, linear: bool = False) -> Profile:
    return Profile.from_bytes(standard_profile_bytes(space, linear))
