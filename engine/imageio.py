"""Reading and writing photographs without losing depth, alpha or colour profile.

Retouchers hand us 16-bit TIFFs with embedded profiles; a round trip through Seamwise must give
back the same depth, the same channel layout and the same ICC bytes. Pillow covers 8-bit files and
JPEG, tifffile covers TIFF at every depth, and imagecodecs' libpng covers 16-bit PNG (which Pillow
cannot hold as RGB). The only thing handled here by hand are the PNG `iCCP`, `eXIf` and `iTXt`
chunks of 16-bit files, which are container metadata, not pixel coding.

Files come from strangers: everything a header declares is checked before it is believed. The
format is sniffed from the magic bytes, never from a name or a content type; compressed metadata
is inflated only up to its cap (a 1 MB PNG can hold a 1 GiB "XMP packet"); TIFF strips and tiles
must not overlap (a 16 KB TIFF whose strips all point at the same bytes decodes to gigabytes).
"""
from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# Checked on the header, before any pixel buffer is allocated.
MAX_PIXELS = 400_000_000
MAX_SIDE = 300_000
MIN_SIDE = 16
# Caps on inflated container metadata: real ICC profiles are under 1 MiB, real XMP packets a few.
MAX_ICC_BYTES = 4 * 1024 * 1024
MAX_METADATA_BYTES = 16 * 1024 * 1024

FORMATS = ("png", "tiff", "jpeg")
_SUFFIX_FORMAT = {".png": "png", ".tif": "tiff", ".tiff": "tiff", ".jpg": "jpeg", ".jpeg": "jpeg"}
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_JPEG_MAGIC = b"\xff\xd8\xff"
# TIFF ASCII tags worth keeping: ImageDescription, Make, Model, DateTime, Artist, Copyright.
_TIFF_TEXT_TAGS = (270, 271, 272, 306, 315, 33432)
_TIFF_XMP, _TIFF_IPTC = 700, 33723
_PNG_XMP_KEY = b"XML:com.adobe.xmp"


class ImageError(ValueError):
    """The file cannot be used as a photograph; the message says why in one line."""


class ImageTooLarge(ImageError):
    """The file declares more pixels or metadata than Seamwise accepts."""


@dataclass(frozen=True)
class Header:
    """What a file's header declares, read without decoding any pixel."""
    format: str
    width: int
    height: int
    channels: int        # after decoding (a palette PNG becomes RGB or RGBA)
    sample_bytes: int    # bytes per channel as decoded

    @property
    def decoded_bytes(self) -> int:
        return self.width * self.height * self.channels * self.sample_bytes


@dataclass
class Picture:
    pixels: np.ndarray   # H x W x C, C in 1..4, uint8 / uint16 / float32
    icc: bytes | None
    format: str          # "png" | "tiff" | "jpeg"
    # Descriptive metadata carried from input to output so that copyright, captions and
    # keywords survive a round trip: "xmp" and "exif" (raw bytes), "iptc" (raw IPTC-NAA
    # bytes) and TIFF text tags by number ("tiff:315" = Artist, "tiff:33432" = Copyright).
    metadata: dict = field(default_factory=dict)

    @property
    def depth(self) -> int:
        return self.pixels.dtype.itemsize * 8

    @property
    def height(self) -> int:
        return self.pixels.shape[0]

    @property
    def width(self) -> int:
        return self.pixels.shape[1]


def format_for_path(path: str | Path) -> str:
    fmt = _SUFFIX_FORMAT.get(Path(path).suffix.lower())
    if fmt is None:
        raise ImageError(f"unsupported file type '{Path(path).suffix}': use .png, .tif/.tiff or .jpg")
    return fmt


def check_dimensions(width: int, height: int, channels: int = 3) -> None:
    """Refuse sizes Seamwise cannot process, before anything is allocated."""
    if width <= 0 or height <= 0:
        raise ImageError(f"image is empty ({width}x{height} pixels)")
    if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
        raise ImageTooLarge(f"image is {width}x{height} pixels; the limit is {MAX_PIXELS:,} pixels "
                         f"and {MAX_SIDE:,} per side")
    if width < MIN_SIDE or height < MIN_SIDE:
        raise ImageError(f"image is {width}x{height} pixels; each side needs at least {MIN_SIDE}")
    if channels not in (1, 2, 3, 4):
        raise ImageError(f"image has {channels} channels; expected grey, RGB or RGBA")


def sniff(head: bytes) -> str | None:
    """The format named by a file's first bytes ("png", "tiff", "jpeg"), or None."""
    if head.startswith(_PNG_MAGIC):
        return "png"
    if head[:4] in _TIFF_MAGICS:
        return "tiff"
    if head.startswith(_JPEG_MAGIC):
        return "jpeg"
    return None


def read_image(path: str | Path) -> Picture:
    """Decode a file; TIFF strips are read from the file, not from a copy of it in memory."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            fmt = sniff(f.read(8))
            f.seek(0)
            if fmt == "tiff":
                return _guarded(_decode_tiff, f)
            data = f.read()
    except IsADirectoryError:
        raise ImageError(f"{path} is a directory, not an image") from None
    except OSError as exc:
        raise ImageError(f"cannot read {path}: {exc.strerror or exc}") from None
    return decode_image(data)


def decode_image(data: bytes) -> Picture:
    if not data:
        raise ImageError("the file is empty")
    decoder = {"png": _decode_png, "tiff": lambda d: _decode_tiff(io.BytesIO(d)),
               "jpeg": lambda d: _decode_pillow(d, "jpeg")}.get(sniff(data[:8]))
    if decoder is None:
        raise ImageError("not a PNG, TIFF or JPEG file")
    return _guarded(decoder, data)


def _guarded(decoder, source) -> Picture:
    try:
        return decoder(source)
    except ImageError:
        raise
    except MemoryError:
        raise ImageTooLarge("the image does not fit in memory") from None
    except Exception as exc:  # codec errors come in many types; the user needs one line
        raise ImageError(f"the image file is damaged or unsupported ({exc})") from None


def probe(path: str | Path) -> Header:
    """The header of a PNG or TIFF file, for checks and memory planning before decoding."""
    with open(path, "rb") as f:
        fmt = sniff(f.read(8))
        if fmt == "png":
            f.seek(0)
            return _probe_png(f.read(33))
        if fmt == "tiff":
            f.seek(0)
            try:
                return _probe_tiff(f)
            except ImageError:
                raise
            except Exception as exc:
                raise ImageError(f"the TIFF header is damaged ({exc})") from None
    raise ImageError("not a PNG or TIFF file")


def _probe_png(head: bytes) -> Header:
    if len(head) < 33 or head[12:16] != b"IHDR":
        raise ImageError("the PNG file is truncated")
    width, height, bit_depth, colour_type = struct.unpack(">IIBB", head[16:26])
    channels = {0: 1, 2: 3, 3: 4, 4: 2, 6: 4}.get(colour_type, 0)
    return Header("png", width, height, channels, 2 if bit_depth == 16 else 1)


def _probe_tiff(f) -> Header:
    import tifffile

    with tifffile.TiffFile(f) as tif:
        page = tif.pages.first
        sample_bytes = max(1, -(-int(page.bitspersample) // 8))
        return Header("tiff", int(page.imagewidth), int(page.imagelength),
                      int(page.samplesperpixel), sample_bytes)


def write_image(path: str | Path, picture: Picture) -> None:
    """Write atomically: a failed write never leaves a half file under the final name."""
    path = Path(path)
    data = encode_image(picture, format_for_path(path))
    tmp = path.with_name(f".{path.name}.partial")
    try:
        tmp.write_bytes(data)
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ImageError(f"cannot write {path}: {exc.strerror or exc}") from None


def encode_image(picture: Picture, fmt: str) -> bytes:
    px = _validated(picture.pixels)
    if fmt == "tiff":
        return _encode_tiff(px, picture.icc, picture.metadata)
    if fmt == "png":
        if px.dtype == np.float32:
            raise ImageError("PNG cannot hold 32-bit float pixels; write a TIFF")
        return _encode_png(px, picture.icc, picture.metadata)
    if fmt == "jpeg":
        if px.dtype != np.uint8 or px.shape[2] not in (1, 3):
            raise ImageError("JPEG holds 8-bit grey or RGB only; write a PNG or TIFF")
        return _encode_pillow(px, picture.icc, "JPEG", picture.metadata, quality=95, subsampling=0)
    raise ImageError(f"unknown format {fmt!r}")


def _validated(px: np.ndarray) -> np.ndarray:
    if px.ndim == 2:
        px = px[:, :, None]
    if px.ndim != 3 or px.shape[2] not in (1, 2, 3, 4):
        raise ImageError(f"pixel array has shape {px.shape}; expected HxWxC with C in 1..4")
    if px.dtype not in (np.uint8, np.uint16, np.float32):
        raise ImageError(f"pixel type {px.dtype} is not 8-bit, 16-bit or 32-bit float")
    return np.ascontiguousarray(px)


# --- PNG ---------------------------------------------------------------------------------------

def _png_chunks(data: bytes):
    pos = len(_PNG_MAGIC)
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        yield kind, data[pos + 8:pos + 8 + length], pos
        pos += 12 + length


def _decode_png(data: bytes) -> Picture:
    header = data[16:26]
    if len(header) < 10:
        raise ImageError("the PNG file is truncated")
    width, height, bit_depth, colour_type = struct.unpack(">IIBB", header)
    channels = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}.get(colour_type, 0)
    check_dimensions(width, height, channels)
    if bit_depth != 16:
        return _decode_pillow(data, "png")
    import imagecodecs

    px = imagecodecs.png_decode(data)
    icc, metadata = None, {}
    for kind, body, _ in _png_chunks(data):
        if kind == b"iCCP":
            name_end = body.index(b"\x00")
            icc = inflate(body[name_end + 2:], MAX_ICC_BYTES, "the ICC profile")
        elif kind == b"eXIf":
            metadata["exif"] = body
        elif kind == b"iTXt" and body.startswith(_PNG_XMP_KEY + b"\x00"):
            compressed = body[len(_PNG_XMP_KEY) + 1] == 1
            text = body[len(_PNG_XMP_KEY) + 3:].split(b"\x00", 2)[2]   # skip language and keyword
            metadata["xmp"] = inflate(text, MAX_METADATA_BYTES, "the XMP metadata") \
                if compressed else text
        elif kind == b"IEND":
            break
    if sum(len(v) for v in metadata.values()) > MAX_METADATA_BYTES:
        raise ImageTooLarge(f"the file carries more than {MAX_METADATA_BYTES:,} bytes of metadata")
    return Picture(_validated(px), icc, "png", metadata)


def inflate(data: bytes, limit: int, what: str) -> bytes:
    """zlib-inflate at most `limit` bytes; a stream that would give more is refused unread."""
    z = zlib.decompressobj()
    out = z.decompress(data, limit)
    if z.unconsumed_tail or (not z.eof and z.decompress(b"", 1)):
        raise ImageTooLarge(f"{what} inflates to more than {limit:,} bytes")
    return out


def _encode_png(px: np.ndarray, icc: bytes | None, metadata: dict) -> bytes:
    if px.dtype == np.uint8:
        return _encode_pillow(px, icc, "PNG", metadata, compress_level=4)
    import imagecodecs

    data = bytes(imagecodecs.png_encode(px if px.shape[2] > 1 else px[:, :, 0], level=4))
    chunks = []
    if icc:
        chunks.append(_png_chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc)))
    if metadata.get("exif"):
        chunks.append(_png_chunk(b"eXIf", metadata["exif"]))
    if metadata.get("xmp"):
        chunks.append(_png_chunk(b"iTXt", _PNG_XMP_KEY + b"\x00\x00\x00\x00\x00" + metadata["xmp"]))
    ihdr_end = len(_PNG_MAGIC) + 8 + 13 + 4
    return data[:ihdr_end] + b"".join(chunks) + data[ihdr_end:]


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


# --- Pillow (8-bit PNG, JPEG) -------------------------------------------------------------------

def _decode_pillow(data: bytes, fmt: str) -> Picture:
    from PIL import Image

    # Pillow's own bomb cap (179 MP) sits below MAX_PIXELS; the sizes this module accepts are
    # checked by check_dimensions, so the cap that applies is the one Seamwise advertises.
    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < MAX_PIXELS:
        Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    with Image.open(io.BytesIO(data)) as im:
        check_dimensions(im.width, im.height, len(im.getbands()))
        icc = im.info.get("icc_profile")
        metadata = _pillow_metadata(im)
        if im.mode == "P":
            im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        elif im.mode in ("1", "CMYK", "YCbCr", "LAB", "HSV") or im.mode.startswith("I") or im.mode == "F":
            if im.mode == "CMYK":
                raise ImageError("CMYK images are not supported; convert to RGB first")
            im = im.convert("RGB") if im.mode != "1" else im.convert("L")
        px = np.asarray(im)
    return Picture(_validated(px), icc or None, fmt, metadata)


def _pillow_metadata(im) -> dict:
    metadata = {}
    exif = im.info.get("exif")
    if exif:
        metadata["exif"] = exif[6:] if exif.startswith(b"Exif\x00\x00") else exif
    xmp = im.info.get("xmp") or im.info.get("XML:com.adobe.xmp")
    if xmp:
        metadata["xmp"] = xmp.encode("utf-8") if isinstance(xmp, str) else bytes(xmp)
    return metadata


def _encode_pillow(px: np.ndarray, icc: bytes | None, fmt: str, metadata: dict | None = None,
                   **options) -> bytes:
    from PIL import Image, PngImagePlugin

    metadata = metadata or {}
    if metadata.get("exif"):  # kept as a bare TIFF structure; JPEG's APP1 wants its header
        options["exif"] = (b"Exif\x00\x00" if fmt == "JPEG" else b"") + metadata["exif"]
    if metadata.get("xmp"):
        if fmt == "PNG":
            info = PngImagePlugin.PngInfo()
            info.add_itxt("XML:com.adobe.xmp", metadata["xmp"].decode("utf-8", "replace"))
            options["pnginfo"] = info
        else:
            options["xmp"] = metadata["xmp"]

    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[px.shape[2]]
    im = Image.fromarray(px[:, :, 0] if px.shape[2] == 1 else px, mode=mode)
    out = io.BytesIO()
    if icc:
        options["icc_profile"] = icc
    im.save(out, fmt, **options)
    return out.getvalue()


# --- TIFF ----------------------------------------------------------------------------------------

def _decode_tiff(f) -> Picture:
    import tifffile

    with tifffile.TiffFile(f) as tif:
        page = tif.pages.first
        width, height = page.imagewidth, page.imagelength
        check_dimensions(width, height, page.samplesperpixel)
        if page.photometric == tifffile.PHOTOMETRIC.SEPARATED:
            raise ImageError("CMYK images are not supported; convert to RGB first")
        _check_segments(page.dataoffsets, page.databytecounts, tif.filehandle.size)
        px = page.asarray()
        if page.planarconfig == tifffile.PLANARCONFIG.SEPARATE and px.ndim == 3:
            px = np.moveaxis(px, 0, -1)
        icc_tag = page.tags.get(34675)
        icc = bytes(icc_tag.value) if icc_tag is not None else None
        metadata = _tiff_metadata(page)
    if px.dtype not in (np.uint8, np.uint16, np.float32):
        if px.dtype == np.float64 or px.dtype == np.float16:
            px = px.astype(np.float32)
        else:
            raise ImageError(f"TIFF sample type {px.dtype} is not supported (8/16-bit or 32-bit float)")
    return Picture(_validated(px), icc, "tiff", metadata)


def _check_segments(offsets, counts, file_size: int) -> None:
    """Refuse strips or tiles that share bytes or lie outside the file.

    Each strip is decoded on its own, so strips pointing at the same compressed bytes multiply
    the decoded size without adding to the file: the classic small-TIFF bomb. Empty segments
    (offset or count 0) are allowed; libtiff writes them for sparse files.
    """
    segments = sorted((int(o), int(c)) for o, c in zip(offsets, counts) if o and c)
    end = 0
    for offset, count in segments:
        if offset < end:
            raise ImageError("the TIFF's strips or tiles overlap (they share data)")
        end = offset + count
    if end > file_size:
        raise ImageError("the TIFF file is truncated (a strip or tile lies past its end)")


def _tiff_metadata(page) -> dict:
    metadata = {}
    for code in _TIFF_TEXT_TAGS:
        tag = page.tags.get(code)
        if tag is not None and isinstance(tag.value, str) and tag.value:
            metadata[f"tiff:{code}"] = tag.value
    for code, key in ((_TIFF_XMP, "xmp"), (_TIFF_IPTC, "iptc")):
        tag = page.tags.get(code)
        if tag is not None:
            value = tag.value
            metadata[key] = value.tobytes() if isinstance(value, np.ndarray) else bytes(value)
    return metadata


def _tiff_extratags(metadata: dict) -> list[tuple]:
    tags = []
    for key, value in metadata.items():
        if key.startswith("tiff:") and int(key[5:]) in _TIFF_TEXT_TAGS:
            tags.append((int(key[5:]), "s", 0, value, True))
    for code, key in ((_TIFF_XMP, "xmp"), (_TIFF_IPTC, "iptc")):
        if metadata.get(key):
            tags.append((code, "B", len(metadata[key]), metadata[key], True))
    return tags


def _encode_tiff(px: np.ndarray, icc: bytes | None, metadata: dict) -> bytes:
    import tifffile

    out = io.BytesIO()
    photometric = "rgb" if px.shape[2] >= 3 else "minisblack"
    extrasamples = ("unassalpha",) if px.shape[2] in (2, 4) else None
    tifffile.imwrite(out, px if px.shape[2] > 1 else px[:, :, 0], photometric=photometric,
                     extrasamples=extrasamples, iccprofile=icc, compression="zlib",
                     predictor=px.dtype != np.float32, bigtiff=px.nbytes > 2**31 - 2**20,
                     metadata=None, extratags=_tiff_extratags(metadata))
    return out.getvalue()
