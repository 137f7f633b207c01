"""The login service definitions: valid for systemd, launchd and Task Scheduler, loopback unless
--lan, restarted after a crash only."""
from __future__ import annotations

import plistlib
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.installer.helpers import INSTALLER, load_installer_module

service = load_installer_module("service")
TASK_NS = "{http://schemas.microsoft.com/windows/2004/02/mit/task}"


@pytest.fixture
def exe(tmp_path) -> Path:
    """An executable at a path with a space, as application folders often have."""
    path = tmp_path / "Application Support" / "bin" / "seamwise"
    path.parent.mkdir(parents=True)
    shutil.copy("/bin/true", path)
    return path


def unit_fields(text: str) -> dict:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


@pytest.mark.parametrize("lan", [False, True])
def test_systemd_unit_verifies_and_serves_loopback_unless_lan(tmp_path, exe, lan):
    unit = tmp_path / "seamwise.service"
    subprocess.run([sys.executable, INSTALLER / "service.py", "systemd", "--exe", exe, "-o", unit,
                    *(["--lan"] if lan else [])], check=True)
    fields = unit_fields(unit.read_text())
    assert fields["ExecStart"] == f'"{exe}" serve' + (" --lan" if lan else "")
    assert fields["Restart"] == "on-failure" and fields["WantedBy"] == "default.target"
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed: checked the fields above only")
    ok = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    broken = tmp_path / "broken.service"
    broken.write_text(unit.read_text().replace(str(exe), str(tmp_path / "missing")))
    assert subprocess.run(["systemd-analyze", "verify", str(broken)],
                          capture_output=True).returncode != 0   # the check can fail


def test_systemd_quotes_what_systemd_would_expand():
    assert service._systemd_quote("/a b/50%/x") == '"/a b/50%%/x"'
    assert service._systemd_quote('C:\\q"') == 'C:\\\\q\\"'


@pytest.mark.parametrize("lan", [False, True])
def test_launchd_agent_is_a_valid_plist(tmp_path, exe, lan):
    out = tmp_path / "com.seamwise.server.plist"
    subprocess.run([sys.executable, INSTALLER / "service.py", "launchd", "--exe", exe, "--log",
                    "/tmp/s.log", "-o", out, *(["--lan"] if lan else [])], check=True)
    if shutil.which("plutil"):
        subprocess.run(["plutil", "-lint", str(out)], check=True)
    agent = plistlib.loads(out.read_bytes())   # the same parser launchd's format is defined by
    assert agent["Label"] == "com.seamwise.server"
    assert agent["ProgramArguments"] == [str(exe), "serve", *(["--lan"] if lan else [])]
    assert agent["RunAtLoad"] is True and agent["KeepAlive"] == {"SuccessfulExit": False}
    assert agent["EnvironmentVariables"]["HF_HUB_OFFLINE"] == "1"


def test_windows_task_is_well_formed_task_scheduler_xml(tmp_path):
    out = tmp_path / "task.xml"
    exe = r"C:\Users\Ana & Bo\AppData\Local\Seamwise\app\venv\Scripts\pythonw.exe"
    subprocess.run([sys.executable, INSTALLER / "service.py", "schtasks", "--exe", exe, "--lan",
                    "--module", "-o", out], check=True)
    raw = out.read_bytes()
    assert raw[:2] == b"\xff\xfe"   # UTF-16 with a byte-order mark, as schtasks /XML reads it
    task = ET.fromstring(raw.decode("utf-16").split("?>", 1)[1])
    assert task.tag == f"{TASK_NS}Task"
    assert task.find(f"{TASK_NS}Triggers/{TASK_NS}LogonTrigger") is not None
    command = task.find(f"{TASK_NS}Actions/{TASK_NS}Exec/{TASK_NS}Command").text
    assert command == exe     # escaped in the XML, exact once parsed
    assert task.find(f"{TASK_NS}Actions/{TASK_NS}Exec/{TASK_NS}Arguments").text == \
        "-m seamwise serve --lan"
    assert task.find(f"{TASK_NS}Settings/{TASK_NS}ExecutionTimeLimit").text == "PT0S"
