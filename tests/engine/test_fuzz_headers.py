"""Fuzzing the image header parsers and the WebSocket message decoder.

Every input must end in a result or in the module's own one-line error (ImageError,
ProtocolError): never another exception, never an allocation past the limits. A few seconds of
examples run with the normal tests; for a longer run set SEAMWISE_FUZZ_EXAMPLES, e.g.

    SEAMWISE_FUZZ_EXAMPLES=20000 .venv/bin/python -m pytest -q -p no:cacheprovider \\
        tests/io/test_fuzz_headers.py tests/server/test_fuzz.py
"""
from __future__ import annotations

import os

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from benchmarks import crafted
from engine import imageio
from engine.imageio import ImageError, Picture, decode_image, encode_image, probe
from server.config import Limits
from server.errors import ProtocolError
from server.validate import (validate_chunk_bytes, validate_image_header, validate_mask_header,
                             validate_params)
from server.ws import unpack

EXAMPLES = int(os.environ.get("SEAMWISE_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
FUZZ_MAX_PIXELS = 4_000_000     # mutated headers may claim anything up to this; keeps RAM small


def _seeds() -> list[bytes]:
    rng = np.random.default_rng(3)
    px8 = rng.integers(0, 256, (24, 40, 3), dtype=np.uint8)
    px16 = rng.integers(0, 65536, (24, 40, 4), dtype=np.uint16)
    meta = {"xmp": b"<x:xmpmeta>seed</x:xmpmeta>", "exif": b"MM\x00*\x00\x00\x00\x08\x00\x00"}
    return [encode_image(Picture(px8, None, "png"), "png"),
            encode_image(Picture(px16, b"\0" * 200, "png", meta), "png"),
            encode_image(Picture(px8, b"\0" * 200, "tiff", meta), "tiff"),
            encode_image(Picture(px16, None, "tiff"), "tiff"),
            encode_image(Picture(px8, None, "jpeg"), "jpeg"),
            crafted.png16_xmp_bomb(64 * 1024), crafted.shared_strip_tiff(64, 64, 8)]


SEEDS = _seeds()


@st.composite
def mutated(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["flip", "set", "cut", "insert"]))
        pos = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set":      # header fields: widths, counts and offsets live in the first bytes
            pos = draw(st.integers(0, min(len(data) - 1, 400)))
            data[pos] = draw(st.sampled_from([0, 1, 0x7F, 0x80, 0xFF]))
        elif kind == "cut":
            del data[pos:]
            if not data:
                data = bytearray(b"\x89")
        else:
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
    return bytes(data)


@pytest.fixture
def small_limits(monkeypatch):
    monkeypatch.setattr(imageio, "MAX_PIXELS", FUZZ_MAX_PIXELS)


@FUZZ
@given(data=mutated())
def test_fuzzed_files_decode_or_give_one_clear_error(small_limits, data):
    try:
        picture = decode_image(data)
    except ImageError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert picture.width * picture.height <= FUZZ_MAX_PIXELS
    assert picture.icc is None or len(picture.icc) <= imageio.MAX_ICC_BYTES


@FUZZ
@given(data=mutated())
def test_fuzzed_headers_probe_or_give_one_clear_error(tmp_path, data):
    path = tmp_path / "upload"
    path.write_bytes(data)
    try:
        header = probe(path)
    except ImageError:
        return
    assert header.format in ("png", "tiff") and header.channels >= 0


scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**64 - 1),
                    st.floats(allow_nan=True), st.text(max_size=12), st.binary(max_size=32))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=10)
headerish = st.dictionaries(st.sampled_from(["width", "height", "channels", "depth", "icc", "x"]),
                            st.one_of(st.integers(-5, 2**40), values), max_size=6)
messages = st.one_of(
    st.binary(max_size=200),
    st.builds(lambda v: msgpack.packb(v, use_bin_type=True), values),
    st.builds(lambda params, image, mask, chunk: msgpack.packb(
        {"type": "job.create", "params": params, "image": image, "mask": mask,
         "chunk_bytes": chunk}, use_bin_type=True),
        st.one_of(values, st.dictionaries(st.sampled_from(["mode", "scale", "steps", "strength",
                                                           "seed", "tile", "overlap", "prompt"]),
                                          values, max_size=4)),
        st.one_of(headerish, values), st.one_of(headerish, values),
        st.one_of(st.integers(-1, 2**40), values)))


@FUZZ
@given(frame=messages)
def test_fuzzed_websocket_messages_decode_or_give_a_protocol_error(frame):
    limits = Limits(decode_ram_bytes=1)
    try:
        msg = unpack(frame)
        image = validate_image_header(msg.get("image"), limits)
        validate_mask_header(msg.get("mask"), image)
        validate_chunk_bytes(msg.get("chunk_bytes"), limits)
        validate_params(msg.get("params"))
    except ProtocolError as err:
        assert err.body()["message"]
