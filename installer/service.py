"""The login service that keeps the Seamwise server running: one definition, three formats.

install.sh writes a systemd user unit (Linux) or a launchd agent (macOS); install.ps1 registers a
Windows scheduled task from the XML written here. All three start `seamwise serve` at login as the
user, bound to 127.0.0.1 unless --lan made this machine a render box, restart it if it crashes,
and leave it stopped when it exits cleanly (the user stopped it on purpose). Standard library only:
the installers run this with the private Python before anything else is installed.

    python service.py systemd|launchd|schtasks --exe PREFIX/bin/seamwise [--lan] [--log FILE] -o OUT
    python service.py schtasks --exe PREFIX/venv/Scripts/pythonw.exe --module [--lan] -o OUT
"""
from __future__ import annotations

import argparse
import plistlib
import sys
from typing import Optional
from xml.sax.saxutils import escape

LABEL = "com.seamwise.server"
UNIT = "seamwise.service"
TASK = "Seamwise server"


def serve_args(lan: bool) -> list[str]:
    return ["serve", "--lan"] if lan else ["serve"]


def _systemd_quote(word: str) -> str:
    """One ExecStart word: quoted when it has spaces, with systemd's escapes for \\ " and %."""
    word = word.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    return f'"{word}"' if any(c.isspace() for c in word) else word


def systemd(exe: str, lan: bool = False) -> str:
    """A systemd user unit; enabled into default.target, which a user's manager reaches at login.

    No network-online dependency: a user manager cannot order itself after the system's network
    target, and the server binds loopback (LAN mode re-advertises when interfaces appear).
    """
    cmd = " ".join(_systemd_quote(w) for w in [exe, *serve_args(lan)])
    scope = "LAN render box, paired tokens only" if lan else "127.0.0.1 only"
    return (f"[Unit]\nDescription=Seamwise render server ({scope})\n\n"
            f"[Service]\nType=simple\nExecStart={cmd}\nEnvironment=HF_HUB_OFFLINE=1\n"
            "Restart=on-failure\nRestartSec=5\n\n"
            "[Install]\nWantedBy=default.target\n")


def launchd(exe: str, lan: bool = False, log: Optional[str] = None) -> bytes:
    """A launchd agent: loaded at login (RunAtLoad), restarted only after a crash."""
    agent = {"Label": LABEL, "ProgramArguments": [exe, *serve_args(lan)],
             "EnvironmentVariables": {"HF_HUB_OFFLINE": "1"}, "RunAtLoad": True,
             "KeepAlive": {"SuccessfulExit": False}, "ProcessType": "Interactive"}
    if log:
        agent["StandardOutPath"] = agent["StandardErrorPath"] = log
    return plistlib.dumps(agent)


def schtasks(exe: str, lan: bool = False, module: bool = False) -> str:
    """Task Scheduler XML: at the user's logon, as the user, restarted after a failure.

    No execution time limit (the default stops a task after 72 hours) and no battery conditions
    (a laptop on battery still renders). `module`: `exe` is the environment's pythonw.exe, run as
    `pythonw -m seamwise serve`, so that no console window opens at every login.
    """
    args = " ".join((["-m", "seamwise"] if module else []) + serve_args(lan))
    scope = "LAN render box" if lan else "127.0.0.1 only"
    return f"""<?xml version="1.0" encoding="UTF-16"?>
<Task version="1.2" xmlns="http://schemas.microsoft.com/windows/2004/02/mit/task">
  <RegistrationInfo><Description>Seamwise render server ({scope})</Description></RegistrationInfo>
  <Triggers><LogonTrigger><Enabled>true</Enabled></LogonTrigger></Triggers>
  <Principals><Principal id="Author"><LogonType>InteractiveToken</LogonType><RunLevel>LeastPrivilege</RunLevel></Principal></Principals>
  <Settings>
    <MultipleInstancesPolicy>IgnoreNew</MultipleInstancesPolicy>
    <DisallowStartIfOnBatteries>false</DisallowStartIfOnBatteries>
    <StopIfGoingOnBatteries>false</StopIfGoingOnBatteries>
    <ExecutionTimeLimit>PT0S</ExecutionTimeLimit>
    <RestartOnFailure><Interval>PT1M</Interval><Count>3</Count></RestartOnFailure>
    <Hidden>true</Hidden>
  </Settings>
  <Actions Context="Author"><Exec><Command>{escape(exe)}</Command><Arguments>{escape(args)}</Arguments></Exec></Actions>
</Task>
"""


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Write the login service definition.")
    parser.add_argument("kind", choices=("systemd", "launchd", "schtasks"))
    parser.add_argument("--exe", required=True, help="the installed seamwise command")
    parser.add_argument("--lan", action="store_true")
    parser.add_argument("--log", default=None, help="launchd: file for the server's output")
    parser.add_argument("--module", action="store_true",
                        help="schtasks: --exe is pythonw.exe, run with -m seamwise")
    parser.add_argument("-o", "--output", required=True)
    args = parser.parse_args(argv)
    if args.kind == "systemd":
        data = systemd(args.exe, args.lan).encode()
    elif args.kind == "launchd":
        data = launchd(args.exe, args.lan, args.log)
    else:
        data = schtasks(args.exe, args.lan, args.module).encode("utf-16")
    with open(args.output, "wb") as f:
        f.write(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
