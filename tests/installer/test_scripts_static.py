"""What can be checked of the installers here without their platforms: shell scripts pass
shellcheck; install.ps1 (no PowerShell on this machine) offers the same options as install.sh,
pins the same uv, calls the same decision and service code, and has balanced brackets."""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.installer.helpers import INSTALLER

SHELL_SCRIPTS = [INSTALLER / "install.sh", INSTALLER / "package_uxp.sh",
                 INSTALLER / "package_lightroom.sh", INSTALLER / "locks" / "compile.sh",
                 INSTALLER / "macos" / "Install Seamwise.command",
                 INSTALLER / "macos" / "Uninstall Seamwise.command",
                 INSTALLER / "macos" / "scripts" / "postinstall", INSTALLER / "macos" / "build_pkg.sh"]
PS1 = (INSTALLER / "install.ps1").read_text(encoding="utf-8")
SH = (INSTALLER / "install.sh").read_text(encoding="utf-8")
UV_HASHES = set(re.findall(r"sha256:([0-9a-f]{64})", (INSTALLER / "locks" / "uv.txt").read_text()))


def test_shell_scripts_pass_shellcheck():
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    out = subprocess.run(["shellcheck", "--shell=bash", *map(str, SHELL_SCRIPTS)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout


def test_every_script_is_executable():
    for script in SHELL_SCRIPTS:
        assert script.stat().st_mode & 0o111, script


def test_uv_is_pinned_to_the_same_version_and_hashes_everywhere():
    version = re.search(r"uv==([\d.]+)", (INSTALLER / "locks" / "uv.txt").read_text()).group(1)
    assert f'$UvVersion = "{version}"' in PS1 and f"UV_VERSION={version}" in SH
    ps_hash = re.search(r'\$UvSha256 = "([0-9a-f]{64})"', PS1).group(1)
    sh_hashes = re.findall(r"sha=([0-9a-f]{64})", SH)
    assert ps_hash in UV_HASHES and sh_hashes and set(sh_hashes) <= UV_HASHES
    for url in re.findall(r"https://files\.pythonhosted\.org/\S+?\.whl", PS1 + SH):
        assert f"uv-{version}-" in url


def test_powershell_offers_what_install_sh_offers_and_shares_its_code():
    sh_options = set(re.findall(r"^\s+--([a-z-]+)\)", SH, re.M))
    assert sh_options == {"prefix", "backend", "python", "no-service", "no-plugins", "lan",
                          "uninstall"}
    block = PS1[PS1.index("param("):PS1.index("\n)\n")]
    params = set(re.findall(r"\[(?:string|switch)\]\$(\w+)", block))
    assert {o.replace("-", "").lower() for o in sh_options} == {p.lower() for p in params}
    for shared in ("backend.py", "service.py", "write_record.py", "locks"):
        assert shared in PS1 and shared in SH, shared
    assert "UnifiedPluginInstallerAgent.exe" in PS1 and "/install" in PS1
    assert r"Adobe\Lightroom\Modules" in PS1


def _code_only(ps: str) -> str:
    """PowerShell with strings and comments blanked (backtick escapes, <# #> blocks)."""
    out, i, n = [], 0, len(ps)
    while i < n:
        c = ps[i]
        if ps.startswith("<#", i):
            i = ps.index("#>", i) + 2
        elif c == "#":
            i = ps.find("\n", i) if "\n" in ps[i:] else n
        elif c in "'\"":
            j = i + 1
            while ps[j] != c:
                j += 2 if (c == '"' and ps[j] == "`") else 1
            i = j + 1
            out.append("''")
        else:
            out.append(c)
            i += 1
    return "".join(out)


def test_powershell_brackets_balance():
    code = _code_only(PS1)
    for open_, close in ("{}", "()", "[]"):
        depth = 0
        for c in code:
            depth += (c == open_) - (c == close)
            assert depth >= 0, f"unbalanced {close}"
        assert depth == 0, f"unbalanced {open_}{close}"
    broken = _code_only(PS1.replace("foreach ($note in $choice.notes) {", "foreach ($note) {{"))
    assert broken.count("{") != broken.count("}")   # the check sees a dropped bracket
