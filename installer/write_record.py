"""Writes PREFIX/install.json, the installer's record of what it chose and installed.

Run by install.sh and install.ps1 with the new environment's Python; the values come from the
environment (the plugin and service fields as JSON) so that no shell has to quote JSON into Python.
`seamwise doctor` reads the record back (seamwise.doctor.install_record).
"""
from __future__ import annotations

import json
import os
import sys
import time

from seamwise import __version__


def main(path: str) -> int:
    e = os.environ
    record = {"version": __version__, "prefix": e["PREFIX"], "data_dir": e["DATA_DIR"],
              "installed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "upgrade": e["UPGRADE"] == "1", "python": e["PYTHON"], "backend": e["BACKEND"],
              "variant": e["VARIANT"], "reason": e["REASON"], "lock": e["LOCK"],
              "torch": e["TORCH"], "service": json.loads(e["SERVICE_JSON"]),
              "lan": e["LAN"] == "1",
              "plugins": {"photoshop": json.loads(e["PS_JSON"]),
                          "lightroom": json.loads(e["LR_JSON"])}}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
