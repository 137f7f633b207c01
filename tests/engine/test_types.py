"""The one parameter check: what parse_params accepts is what render accepts."""
from __future__ import annotations

import numpy as np
import pytest

from engine import api
from engine.types import ParamError, RenderParams, check_params, parse_params


def test_text_and_nil_become_typed_values_and_defaults():
    p = parse_params({"steps": " 12", "strength": "0.25", "seed": "+7", "tile": None,
                      "strategy": "", "prompt": None}, recommended=lambda scale: (0.5, 3))
    assert (p.steps, p.strength, p.seed, p.tile, p.strategy, p.prompt) == \
        (12, 0.25, 7, None, "memory", "")
    assert parse_params({}, recommended=lambda scale: (0.5, 3 + scale)).steps == 4
    assert parse_params({"scale": "2"}, recommended=lambda scale: (0.5, 3 + scale)).steps == 5
    assert parse_params({"seed": np.int64(3)}).seed == 3


@pytest.mark.parametrize("name, value", [
    ("steps", "²"), ("steps", "--5"), ("steps", "٣"), ("seed", "5" * 5000), ("steps", 2.0),
    ("steps", True), ("strength", "½"), ("strength", "nan"), ("guidance", 0.5), ("tile", 8),
    ("overlap", -1), ("scale", 3), ("strategy", "quilt"), ("prompt", 7), ("bogus", 1),
])
def test_malformed_or_out_of_range_values_name_the_parameter(name, value):
    with pytest.raises(ParamError) as err:
        parse_params({name: value})
    assert err.value.name == name and name in str(err.value)


def test_overlap_is_limited_by_the_tile():
    check_params(RenderParams(tile=64, overlap=32))
    with pytest.raises(ParamError, match="overlap"):
        check_params(RenderParams(tile=64, overlap=33))


def test_render_refuses_what_parse_params_refuses():
    with pytest.raises(api.EngineError, match="steps"):
        api.render(np.zeros((16, 16, 3), np.uint8), RenderParams(steps=201))
