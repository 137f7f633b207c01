"""A box runs work only for a head it is paired with: the LAN pairing tokens, reused.

Pairing today: a head asks a box for a one-time code and receives a token that the box keeps
(hashed) in its data directory. In a cluster, a render actor that lands on a box other than the
head's own asks the head for that box's token and checks it against the box's data directory
before it loads a model or takes any work. An unpaired head (or a box that never ran Seamwise)
gets nothing.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional


def box_data_dir() -> Path:
    """The box's Seamwise data directory: SEAMWISE_DATA_DIR for `ray start`, else the default."""
    from ..config import default_data_dir

    given = os.environ.get("SEAMWISE_DATA_DIR")
    return Path(given) if given else default_data_dir()


class NotPaired(PermissionError):
    """This box is not paired with the cluster's head."""


class BoxGate:
    def __init__(self, head_box: bool, data_dir: Optional[Path] = None):
        self.head_box = head_box
        self.admitted = head_box
        self.data_dir = data_dir or box_data_dir()
        self.server_id = None if head_box else self._server_id()

    def _server_id(self) -> Optional[str]:
        db = self._db()
        if db is None:
            return None
        row = db.execute("SELECT value FROM settings WHERE key='server_id'").fetchone()
        db.close()
        return row[0] if row else None

    def _db(self):
        from ..store import open_db

        if not (self.data_dir / "seamwise.db").exists():   # never ran Seamwise: nothing paired
            return None
        return open_db(self.data_dir)

    def admit(self, token: Optional[str]) -> bool:
        """True when `token` is one this box issued (and has not revoked)."""
        if self.head_box:
            return True
        db = self._db() if isinstance(token, str) and token else None
        if db is None:
            return False
        from ..auth import Auth

        try:
            self.admitted = Auth(db).check(token) is not None
        finally:
            db.close()
        return self.admitted

    def check(self) -> None:
        if not self.admitted:
            raise NotPaired("this box is not paired with the cluster's head; it runs no work")
