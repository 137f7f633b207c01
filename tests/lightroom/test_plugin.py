"""The plugin's files as Lightroom loads them: Lua 5.1 syntax, globals, Info.lua, JSON."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import zipfile

import lupa.lua51 as lua51
import pytest
from hypothesis import assume, given, settings, strategies as st

from .lr_sdk import PLUGIN_DIR, LightroomHost

LUA_FILES = sorted(PLUGIN_DIR.glob("*.lua"))
LUAC = shutil.which("luac5.1")

# Globals Lightroom's Lua 5.1 gives a plugin: the standard library it keeps, plus import/LOC/require.
ALLOWED_GLOBALS = {
    "import", "LOC", "require", "_PLUGIN",
    "assert", "error", "ipairs", "next", "pairs", "pcall", "select", "setmetatable", "getmetatable",
    "tonumber", "tostring", "type", "unpack", "rawget", "rawset", "xpcall",
    "string", "table", "math", "io", "os", "coroutine",
}


def test_plugin_has_its_files():
    names = {p.name for p in LUA_FILES}
    assert {"Info.lua", "SeamwiseFilterProvider.lua"} <= names


@pytest.mark.parametrize("path", LUA_FILES, ids=lambda p: p.name)
def test_compiles_under_lua_5_1_runtime(path):
    LightroomHost().compile(path)


def test_runtime_compile_rejects_newer_lua(tmp_path):
    """The runtime really is 5.1: the syntax later versions added does not load."""
    host = LightroomHost()
    for source in ("local a = 7 // 2", "goto done ::done::", "local x <const> = 1"):
        bad = tmp_path / "bad.lua"
        bad.write_text(source)
        with pytest.raises(SyntaxError):
            host.compile(bad)


@pytest.mark.skipif(LUAC is None, reason="luac5.1 not installed (Debian package lua5.1)")
@pytest.mark.parametrize("path", LUA_FILES, ids=lambda p: p.name)
def test_luac_5_1_and_globals(path):
    listing = subprocess.run([LUAC, "-p", "-l", str(path)], capture_output=True, text=True, check=True).stdout
    used = set(re.findall(r"[GS]ETGLOBAL\s.*;\s*(\w+)", listing))
    assert used <= ALLOWED_GLOBALS, f"{path.name} uses globals {sorted(used - ALLOWED_GLOBALS)}"
    assert not re.findall(r"SETGLOBAL", listing), f"{path.name} assigns a global"


def test_info_lua_declares_the_export_filter():
    info = LightroomHost().info()
    assert info[b"LrToolkitIdentifier"] == b"com.seamwise.lightroom"
    assert info[b"LrPluginName"] == b"Seamwise"
    assert info[b"LrSdkVersion"] >= info[b"LrSdkMinimumVersion"] >= 6
    provider = info[b"LrExportFilterProvider"]
    assert (PLUGIN_DIR / provider[b"file"].decode()).is_file()
    assert provider[b"id"] and provider[b"title"]


def test_filter_provider_offers_the_sdk_hooks():
    provider = LightroomHost().filter_provider()
    for hook in (b"exportPresetFields", b"sectionForFilterInDialog", b"postProcessRenderedPhotos"):
        assert provider[hook] is not None, hook
    keys = {f[b"key"] for f in provider[b"exportPresetFields"].values()}
    assert keys == {b"seamwise_address", b"seamwise_mode", b"seamwise_modelDefaults",
                    b"seamwise_strength", b"seamwise_steps", b"seamwise_seed", b"seamwise_strategy",
                    b"seamwise_addToCatalog"}


def test_job_query_and_validation():
    host = LightroomHost()
    settings_mod = host.require(b"SeamwiseSettings")
    own = {"seamwise_address": " http://192.168.1.20:7821/ ", "seamwise_mode": "upscale",
           "seamwise_modelDefaults": False, "seamwise_strength": 0.5, "seamwise_steps": 20,
           "seamwise_seed": 42, "seamwise_strategy": "spot"}
    parsed = settings_mod[b"fromProperties"](host.property_table(own))
    assert parsed[b"address"] == b"http://192.168.1.20:7821"
    assert settings_mod[b"jobQuery"](parsed) == (
        b"mode=upscale&scale=2&strength=0.5&steps=20&seed=42&strategy=spot")
    # by default the server's model chooses strength and steps: the query leaves them out, and
    # out-of-range leftovers in the disabled fields do not block the export
    default = settings_mod[b"fromProperties"](host.property_table(
        {"seamwise_seed": 42, "seamwise_steps": 999}))
    assert settings_mod[b"jobQuery"](default) == b"mode=refine&scale=1&seed=42&strategy=memory"
    for bad, word in ((("seamwise_address", "ftp://x"), b"address"), (("seamwise_strength", 1.5), b"Strength"),
                      (("seamwise_steps", 2.5), b"Steps"), (("seamwise_seed", -1), b"Seed"),
                      (("seamwise_mode", "paint"), b"Mode"), (("seamwise_strategy", "x"), b"strategy")):
        result, message = settings_mod[b"fromProperties"](host.property_table(
            {"seamwise_modelDefaults": False, **dict([bad])}))
        assert result is None and word in message, (bad, message)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**53 + 1, 2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12)


@settings(max_examples=60, deadline=None)
@given(json_values)
def test_json_decodes_what_python_encodes(value):
    assume(not _null_in_list(value))  # nil cannot sit in a Lua sequence; the server never sends one
    host = _json_host()
    decode = host.require(b"SeamwiseJson")[b"decode"]
    for text in (json.dumps(value), json.dumps(value, ensure_ascii=False, indent=1)):
        lua_value = decode(text.encode())
        assert _to_python(lua_value) == _without_nulls(value)


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(st.text(max_size=8), st.text(max_size=20) | st.integers(0, 2**32 - 1), max_size=4))
def test_json_encodes_what_python_decodes(value):
    host = _json_host()
    encode = host.require(b"SeamwiseJson")[b"encode"]
    if not value:
        return  # an empty table is ambiguous in Lua (array or object); the plugin never sends one
    table = host.lua.table_from({k.encode(): (v.encode() if isinstance(v, str) else v) for k, v in value.items()})
    assert json.loads(encode(table).decode()) == value


def test_json_rejects_malformed_text():
    decode = _json_host().require(b"SeamwiseJson")[b"decode"]
    lua_pcall = _json_host().lua.eval(b"function(f, s) return pcall(f, s) end")
    for text in (b"", b"{", b'{"a" 1}', b"[1,]", b'"\\x"', b"tru", b"{} x"):
        ok, _ = lua_pcall(decode, text)
        assert ok is False, text


_HOST = None


def _json_host() -> LightroomHost:
    global _HOST
    if _HOST is None:
        _HOST = LightroomHost()
    return _HOST


def _null_in_list(value) -> bool:
    if isinstance(value, list):
        return any(v is None or _null_in_list(v) for v in value)
    if isinstance(value, dict):
        return any(_null_in_list(v) for v in value.values())
    return False


def _without_nulls(value):
    """JSON null decodes to nil, which a Lua table cannot hold; empty [] and {} are the same table."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value] if value else {}
    return value


def _to_python(value):
    if isinstance(value, bytes):
        return value.decode()
    if lua51.lua_type(value) == "table":
        items = dict(value.items())
        keys = list(items)
        if keys and all(isinstance(k, int) for k in keys) and sorted(keys) == list(range(1, len(keys) + 1)):
            return [_to_python(items[i]) for i in range(1, len(keys) + 1)]
        return {k.decode(): _to_python(v) for k, v in items.items()}
    return value


def test_package_zips_the_plugin_folder(tmp_path):
    root = PLUGIN_DIR.parents[1]
    subprocess.run(["bash", str(root / "installer" / "package_lightroom.sh")], cwd=root, check=True,
                   env=dict(os.environ, DIST=str(tmp_path)), capture_output=True)
    (archive,) = tmp_path.glob("seamwise-lightroom-*.zip")
    with zipfile.ZipFile(archive) as z:
        names = sorted(z.namelist())
        assert names == sorted(f"seamwise.lrplugin/{p.name}" for p in PLUGIN_DIR.iterdir() if p.is_file())
        for name in names:
            assert z.read(name) == (PLUGIN_DIR / name.split("/", 1)[1]).read_bytes()
