"""Pairing codes and bearer tokens for LAN mode.

Tokens look like `<token_id>.<secret>`; only a per-token salt and sha256(salt + secret) are stored,
so a copy of the data directory does not give anyone a working token. Pairing codes are stored the
same way, which also lets `seamwise pair` issue a code for a server that is already running (both
share the SQLite file).
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import time
from typing import Optional

CODE_TTL_S = 600.0
MAX_FAILURES = 5
LAST_USED_RESOLUTION_S = 60.0


def _digest(salt: bytes, secret: str) -> bytes:
    return hashlib.sha256(salt + secret.encode("utf-8")).digest()


class Auth:
    def __init__(self, db: sqlite3.Connection):
        self.db = db

    # ---- pairing codes -------------------------------------------------------------------
    def new_code(self, now: Optional[float] = None) -> str:
        now = time.time() if now is None else now
        code = f"{secrets.randbelow(10**6):06d}"
        salt = secrets.token_bytes(16)
        self.db.execute("DELETE FROM pair_codes WHERE expires < ?", (now,))
        self.db.execute("INSERT INTO pair_codes (hash, salt, created, expires) VALUES (?,?,?,?)",
                        (_digest(salt, code), salt, now, now + CODE_TTL_S))
        self._set_failures(0)
        return code

    def redeem(self, code: object, name: object) -> Optional[tuple[str, str]]:
        """Exchange a one-time code for a new token; None if the code is not valid."""
        now = time.time()
        if not isinstance(code, str) or not isinstance(name, str):
            return None
        self.db.execute("BEGIN IMMEDIATE")
        try:
            rows = self.db.execute("SELECT hash, salt FROM pair_codes WHERE expires >= ?",
                                   (now,)).fetchall()
            match = next((h for h, s in rows if hmac.compare_digest(h, _digest(s, code))), None)
            if match is None:
                failures = self._failures() + 1
                if failures >= MAX_FAILURES:
                    self.db.execute("DELETE FROM pair_codes")
                    failures = 0
                self._set_failures(failures)
                self.db.execute("COMMIT")
                return None
            self.db.execute("DELETE FROM pair_codes WHERE hash = ?", (match,))
            self._set_failures(0)
            result = self._new_token(name[:100] or "unnamed", now)
            self.db.execute("COMMIT")
            return result
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def _failures(self) -> int:
        row = self.db.execute("SELECT value FROM settings WHERE key='pair_failures'").fetchone()
        return int(row[0]) if row else 0

    def _set_failures(self, n: int) -> None:
        self.db.execute("INSERT OR REPLACE INTO settings (key, value) VALUES ('pair_failures', ?)",
                        (str(n),))

    # ---- tokens --------------------------------------------------------------------------
    def _new_token(self, name: str, now: float) -> tuple[str, str]:
        token_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        salt = secrets.token_bytes(16)
        self.db.execute("INSERT INTO tokens (id, name, salt, hash, created) VALUES (?,?,?,?,?)",
                        (token_id, name, salt, _digest(salt, secret), now))
        return f"{token_id}.{secret}", token_id

    def check(self, token: object) -> Optional[str]:
        """The token's id if it is valid, else None."""
        if not isinstance(token, str) or "." not in token or len(token) > 200:
            return None
        token_id, secret = token.split(".", 1)
        row = self.db.execute("SELECT salt, hash, last_used FROM tokens WHERE id = ?",
                              (token_id,)).fetchone()
        if row is None or not hmac.compare_digest(row[1], _digest(row[0], secret)):
            return None
        now = time.time()
        if row[2] is None or now - row[2] > LAST_USED_RESOLUTION_S:   # not a disk write per request
            self.db.execute("UPDATE tokens SET last_used = ? WHERE id = ?", (now, token_id))
        return token_id

    def list(self) -> list[dict]:
        rows = self.db.execute("SELECT id, name, created, last_used FROM tokens ORDER BY created")
        return [{"id": r[0], "name": r[1], "created": r[2], "last_used": r[3]} for r in rows]

    def revoke(self, token_id: str) -> bool:
        cur = self.db.execute("DELETE FROM tokens WHERE id = ?", (token_id,))
        return cur.rowcount > 0


def bearer(header: Optional[str]) -> Optional[str]:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None
