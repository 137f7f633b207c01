"""LittleCMS 2 in float precision, through its C interface.

Pillow's ImageCms drives the same library but only for 8- and 16-bit image modes, and clips to
the encoding range; colour-managing a model's input must neither quantise nor clip (a ProPhoto
pixel outside sRGB has to survive the trip to sRGB and back). LittleCMS itself has float pixel
formats that carry such values through matrix-shaper profiles unbounded, so this module calls
it directly: the copy Pillow ships (the one ImageCms uses) where there is one, else the
system's `liblcms2`. Only buffer marshalling lives here; every colour computation is the
library's.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import numpy as np

# lcms2.h pixel formats: FLOAT_SH(1) | COLORSPACE_SH(PT_x) | CHANNELS_SH(n) | BYTES_SH(4)
TYPE_RGB_FLT = (1 << 22) | (4 << 16) | (3 << 3) | 4
TYPE_GRAY_FLT = (1 << 22) | (3 << 16) | (1 << 3) | 4
TYPE_LAB_FLT = (1 << 22) | (10 << 16) | (3 << 3) | 4
INTENT_RELATIVE_COLORIMETRIC = 1
# Black-point compensation. LittleCMS never optimises float transforms into 16-bit tables (it
# only joins matrices), so its default optimisation keeps float precision (measured equal).
FLAGS = 0x2000
SIG_RGB, SIG_GRAY, SIG_LAB = 0x52474220, 0x47524159, 0x4C616220
_FORMATS = {SIG_RGB: (TYPE_RGB_FLT, 3), SIG_GRAY: (TYPE_GRAY_FLT, 1), SIG_LAB: (TYPE_LAB_FLT, 3)}
_TAG_DESC = 0x64657363
_TRC_TAGS = (0x72545243, 0x67545243, 0x62545243)   # rTRC gTRC bTRC
_TAG_GRAY_TRC = 0x6B545243
_BAND_PIXELS = 1 << 20   # per library call: bounded temporaries, and bands run on several cores


class ColourEngineMissing(RuntimeError):
    """No LittleCMS 2 library could be loaded."""


class _XyY(ctypes.Structure):
    _fields_ = [("x", ctypes.c_double), ("y", ctypes.c_double), ("Y", ctypes.c_double)]


class _XyYTriple(ctypes.Structure):
    _fields_ = [("red", _XyY), ("green", _XyY), ("blue", _XyY)]


class _Lab(ctypes.Structure):
    _fields_ = [("L", ctypes.c_double), ("a", ctypes.c_double), ("b", ctypes.c_double)]


def _candidates() -> list[str]:
    found = []
    try:
        import PIL
        base = os.path.dirname(PIL.__file__)
        for pattern in ("../pillow.libs/liblcms2*", ".dylibs/liblcms2*", "../pillow.libs/lcms2*"):
            found += sorted(glob.glob(os.path.join(base, pattern)))
    except ImportError:
        pass
    system = ctypes.util.find_library("lcms2")
    if system:
        found.append(system)
    return found + ["liblcms2.so.2"]


@lru_cache(maxsize=1)
def library() -> ctypes.CDLL:
    """The LittleCMS library, with argument types declared; raises ColourEngineMissing."""
    for path in _candidates():
        try:
            lib = ctypes.CDLL(path)
            lib.cmsGetEncodedCMMversion()
        except (OSError, AttributeError):
            continue
        _declare(lib)
        return lib
    raise ColourEngineMissing("LittleCMS 2 (liblcms2) is not installed; colour management needs it")


def version() -> int:
    """LittleCMS's version as the library encodes it (2190 = 2.19)."""
    return int(library().cmsGetEncodedCMMversion())


def _declare(lib: ctypes.CDLL) -> None:
    p, u32, i32, d = ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int32, ctypes.c_double
    sig = {
        "cmsOpenProfileFromMem": (p, [ctypes.c_char_p, u32]),
        "cmsCloseProfile": (i32, [p]),
        "cmsSaveProfileToMem": (i32, [p, p, ctypes.POINTER(u32)]),
        "cmsCreateRGBProfile": (p, [ctypes.POINTER(_XyY), ctypes.POINTER(_XyYTriple),
                                    ctypes.POINTER(p)]),
        "cmsCreateGrayProfile": (p, [ctypes.POINTER(_XyY), p]),
        "cmsCreateLab4Profile": (p, [p]),
        "cmsBuildParametricToneCurve": (p, [p, i32, ctypes.POINTER(d)]),
        "cmsFreeToneCurve": (None, [p]),
        "cmsGetColorSpace": (u32, [p]),
        "cmsIsMatrixShaper": (i32, [p]),
        "cmsGetProfileInfoASCII": (u32, [p, i32, ctypes.c_char_p, ctypes.c_char_p,
                                         ctypes.c_char_p, u32]),
        "cmsMLUalloc": (p, [p, u32]),
        "cmsMLUsetASCII": (i32, [p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p]),
        "cmsMLUfree": (None, [p]),
        "cmsWriteTag": (i32, [p, u32, p]),
        "cmsSetProfileVersion": (None, [p, d]),
        "cmsMD5computeID": (i32, [p]),
        "cmsCreateTransform": (p, [p, u32, p, u32, u32, u32]),
        "cmsDoTransform": (None, [p, p, p, u32]),
        "cmsDeleteTransform": (None, [p]),
        "cmsCIE2000DeltaE": (d, [ctypes.POINTER(_Lab), ctypes.POINTER(_Lab), d, d, d]),
    }
    for name, (res, args) in sig.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args


class Profile:
    """An open LittleCMS profile; closed when garbage-collected."""

    def __init__(self, handle: int, what: str):
        if not handle:
            raise ValueError(f"{what}: not a usable ICC profile")
        self._h = handle

    def __del__(self) -> None:
        if getattr(self, "_h", None):
            library().cmsCloseProfile(self._h)
            self._h = None

    @classmethod
    def from_bytes(cls, data: bytes) -> "Profile":
        return cls(library().cmsOpenProfileFromMem(data, len(data)), "the embedded profile")

    @classmethod
    def matrix_shaper(cls, white: tuple[float, float], primaries: tuple, curve: tuple,
                      description: str) -> "Profile":
        """An RGB profile from its white point and primaries (CIE xy) and one parametric tone
        curve (LittleCMS type and parameters), built by LittleCMS as ICC v4."""
        lib = library()
        wp = _XyY(white[0], white[1], 1.0)
        prim = _XyYTriple(*(_XyY(x, y, 1.0) for x, y in primaries))
        tone = _curve(curve)
        try:
            curves = (ctypes.c_void_p * 3)(tone, tone, tone)
            prof = cls(lib.cmsCreateRGBProfile(ctypes.byref(wp), ctypes.byref(prim), curves),
                       description)
        finally:
            lib.cmsFreeToneCurve(tone)
        prof._describe(description)
        return prof

    @classmethod
    def grey(cls, white: tuple[float, float], curve: tuple, description: str) -> "Profile":
        lib = library()
        wp = _XyY(white[0], white[1], 1.0)
        tone = _curve(curve)
        try:
            prof = cls(lib.cmsCreateGrayProfile(ctypes.byref(wp), tone), description)
        finally:
            lib.cmsFreeToneCurve(tone)
        prof._describe(description)
        return prof

    @classmethod
    def lab(cls) -> "Profile":
        return cls(library().cmsCreateLab4Profile(None), "Lab")

    def _describe(self, text: str) -> None:
        lib = library()
        mlu = lib.cmsMLUalloc(None, 1)
        try:
            lib.cmsMLUsetASCII(mlu, b"en", b"US", text.encode("ascii", "replace"))
            lib.cmsWriteTag(self._h, _TAG_DESC, mlu)
        finally:
            lib.cmsMLUfree(mlu)
        lib.cmsMD5computeID(self._h)

    def with_linear_curves(self) -> "Profile":
        """The same primaries and white with linear tone curves (32-bit float pixels are linear
        light in the document's primaries, whatever curve its profile names)."""
        lib = library()
        copy = Profile.from_bytes(self.to_bytes())
        tone = _curve((1, (1.0,)))
        try:
            tags = _TRC_TAGS if self.colour_space == SIG_RGB else (_TAG_GRAY_TRC,)
            for tag in tags:
                if not lib.cmsWriteTag(copy._h, tag, tone):
                    raise ValueError("cannot give the profile linear curves")
        finally:
            lib.cmsFreeToneCurve(tone)
        return copy

    def to_bytes(self) -> bytes:
        lib = library()
        size = ctypes.c_uint32(0)
        if not lib.cmsSaveProfileToMem(self._h, None, ctypes.byref(size)):
            raise ValueError("cannot serialise the profile")
        buf = ctypes.create_string_buffer(size.value)
        if not lib.cmsSaveProfileToMem(self._h, buf, ctypes.byref(size)):
            raise ValueError("cannot serialise the profile")
        return buf.raw[:size.value]

    @property
    def is_matrix_shaper(self) -> bool:
        return bool(library().cmsIsMatrixShaper(self._h))

    @property
    def colour_space(self) -> int:
        return int(library().cmsGetColorSpace(self._h))

    @property
    def description(self) -> str:
        buf = ctypes.create_string_buffer(512)
        library().cmsGetProfileInfoASCII(self._h, 0, b"en", b"US", buf, 512)
        return buf.value.decode("ascii", "replace").strip()


def _curve(curve: tuple) -> int:
    kind, params = curve
    arr = (ctypes.c_double * 10)(*params)
    tone = library().cmsBuildParametricToneCurve(None, kind, arr)
    if not tone:
        raise ValueError(f"LittleCMS refused tone curve {curve}")
    return tone


class FloatTransform:
    """RGB, grey or Lab float32 pixels from one profile to another: relative colorimetric with
    black-point compensation, in float, so values keep float precision and are not clipped
    where the profiles' curves and matrices extend beyond the encoding range."""

    def __init__(self, src: Profile, dst: Profile):
        lib = library()
        try:
            fmt_in, self.in_channels = _FORMATS[src.colour_space]
            fmt_out, self.out_channels = _FORMATS[dst.colour_space]
        except KeyError:
            raise ValueError("only RGB, grey and Lab profiles can be converted") from None
        self._profiles = (src, dst)   # the transform needs them alive
        self._h = lib.cmsCreateTransform(src._h, fmt_in, dst._h, fmt_out,
                                         INTENT_RELATIVE_COLORIMETRIC, FLAGS)
        if not self._h:
            raise ValueError(f"LittleCMS cannot convert from {src.description!r} to "
                             f"{dst.description!r}")

    def __del__(self) -> None:
        if getattr(self, "_h", None):
            library().cmsDeleteTransform(self._h)
            self._h = None

    def __call__(self, pixels: np.ndarray, out: np.ndarray | None = None,
                 workers: int | None = None) -> np.ndarray:
        """`pixels`: (..., in_channels) float32; returns (..., out_channels) float32, written
        into `out` when given (it may be `pixels` itself when the channel counts match)."""
        src = np.ascontiguousarray(pixels, dtype=np.float32)
        flat = src.reshape(-1, self.in_channels)
        if out is None:
            out = np.empty(src.shape[:-1] + (self.out_channels,), np.float32)
        if out.dtype != np.float32 or not out.flags.c_contiguous:
            raise ValueError("output must be a C-contiguous float32 array")
        dst = out.reshape(-1, self.out_channels)
        n = flat.shape[0]
        lib = library()

        def band(start: int) -> None:
            stop = min(n, start + _BAND_PIXELS)
            lib.cmsDoTransform(self._h, flat[start:stop].ctypes.data, dst[start:stop].ctypes.data,
                               stop - start)

        starts = range(0, n, _BAND_PIXELS)
        if len(starts) <= 1:
            for s in starts:
                band(s)
        else:   # ctypes releases the GIL during the call, so bands run in parallel
            with ThreadPoolExecutor(workers or os.cpu_count() or 1) as pool:
                list(pool.map(band, starts))
        return out


def delta_e_2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 between two (N, 3) Lab arrays, computed by LittleCMS pair by pair."""
    fn = library().cmsCIE2000DeltaE
    a = np.ascontiguousarray(lab1, np.float64).reshape(-1, 3)
    b = np.ascontiguousarray(lab2, np.float64).reshape(-1, 3)
    out = np.empty(a.shape[0], np.float64)
    for i in range(a.shape[0]):
        out[i] = fn(_Lab(*a[i]), _Lab(*b[i]), 1.0, 1.0, 1.0)
    return out
