"""Round trips through real files: depth, channels and ICC bytes must survive unchanged."""
import numpy as np
import pytest
from PIL import ImageCms

from engine.imageio import (ImageError, Picture, check_dimensions, decode_image, encode_image,
                            read_image, write_image)

ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
CASES = [(np.uint8, "png"), (np.uint8, "tiff"), (np.uint16, "png"), (np.uint16, "tiff"),
         (np.float32, "tiff")]


def _random(dtype, shape, seed=0):
    rng = np.random.default_rng(seed)
    if dtype == np.float32:
        return rng.random(shape, dtype=np.float32) * 1.5 - 0.25  # HDR values outside 0..1 too
    return rng.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)


@pytest.mark.parametrize("dtype,fmt", CASES)
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_lossless_round_trip_keeps_depth_channels_and_icc(tmp_path, dtype, fmt, channels):
    pixels = _random(dtype, (37, 53, channels))
    path = tmp_path / f"img.{'tif' if fmt == 'tiff' else fmt}"
    write_image(path, Picture(pixels, ICC if channels > 1 else None, fmt))
    back = read_image(path)
    assert back.pixels.dtype == dtype
    assert back.pixels.shape == pixels.shape
    assert np.array_equal(back.pixels, pixels)
    assert back.icc == (ICC if channels > 1 else None)
    assert back.format == fmt


def test_jpeg_keeps_icc_and_is_close(tmp_path):
    y, x = np.mgrid[0:64, 0:96]
    pixels = np.stack([x * 2, y * 3, (x + y)], -1).astype(np.uint8)
    write_image(tmp_path / "a.jpg", Picture(pixels, ICC, "jpeg"))
    back = read_image(tmp_path / "a.jpg")
    assert back.icc == ICC and back.pixels.dtype == np.uint8
    assert np.abs(back.pixels.astype(int) - pixels).mean() < 2.0


def test_jpeg_refuses_16_bit():
    with pytest.raises(ImageError, match="JPEG"):
        encode_image(Picture(np.zeros((20, 20, 3), np.uint16), None, "jpeg"), "jpeg")


@pytest.mark.parametrize("data,message", [
    (b"", "empty"),
    (b"hello world", "not a PNG, TIFF or JPEG"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "truncated"),
])
def test_bad_bytes_give_one_clear_error(data, message):
    with pytest.raises(ImageError, match=message):
        decode_image(data)


def test_truncated_tiff_is_reported_not_crashing():
    data = encode_image(Picture(_random(np.uint16, (64, 64, 3)), None, "tiff"), "tiff")
    with pytest.raises(ImageError):
        decode_image(data[: len(data) // 3])


def test_dimension_limits_checked_before_decoding():
    for w, h in [(0, 10), (1, 100000), (300001, 20), (30000, 30000)]:
        with pytest.raises(ImageError):
            check_dimensions(w, h)
    check_dimensions(16, 16)


def test_huge_png_header_refused_without_allocating():
    """A 100000x100000 PNG header must be refused from its header alone."""
    import struct, zlib
    ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    with pytest.raises(ImageError, match="limit"):
        decode_image(b"\x89PNG\r\n\x1a\n" + chunk)


def test_write_is_atomic_on_failure(tmp_path):
    target = tmp_path / "missing-dir" / "out.png"
    with pytest.raises(ImageError, match="cannot write"):
        write_image(target, Picture(np.zeros((16, 16, 3), np.uint8), None, "png"))
    assert not list(tmp_path.rglob("*.partial"))


XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
       b'<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:rights>(c) Studio</dc:rights>'
       b'</rdf:Description></rdf:RDF></x:xmpmeta>')


@pytest.mark.parametrize("dtype,fmt", [(np.uint8, "png"), (np.uint16, "png"), (np.uint8, "tiff"),
                                       (np.uint16, "tiff"), (np.float32, "tiff"), (np.uint8, "jpeg")])
def test_descriptive_metadata_survives_a_round_trip(dtype, fmt):
    """Copyright and captions (XMP, TIFF text tags) must not be stripped by processing."""
    metadata = {"xmp": XMP}
    if fmt != "tiff":
        from PIL import Image
        exif = Image.Exif()
        exif[0x8298] = "(c) Studio 2026"
        metadata["exif"] = exif.tobytes()[6:] if exif.tobytes().startswith(b"Exif") else exif.tobytes()
    else:
        metadata.update({"tiff:33432": "(c) Studio 2026", "tiff:315": "A. Photographer",
                         "iptc": b"\x1c\x02\x74\x00\x0c(c) Studio 26"})
    pixels = _random(dtype, (24, 40, 3))
    back = decode_image(encode_image(Picture(pixels, ICC, fmt, metadata), fmt))
    for key, value in metadata.items():
        assert back.metadata.get(key) == value, key
    assert back.icc == ICC
