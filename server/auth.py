"""Pairing codes and bearer tokens for LAN mode.

Tokens look like `<token_id>.<secret>`; only a per-token salt and sha256(salt + secret) are stored,
so a copy of the data directory does not give anyone a working token. Pairing codes are stored the
same way, which also lets `seamwise pair` issue a code for a server that is already running (both
share the SQLite file).
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import sqlite3
import time
from collections import OrderedDict
from typing import Optional

from .errors import ProtocolError

CODE_TTL_S = 600.0
FREE_FAILURES = 5            # wrong codes an address may send before it has to wait
MAX_BACKOFF_S = 3600.0
THROTTLED_ADDRESSES = 4096   # remembered guessers; the oldest are forgotten first
LAST_USED_RESOLUTION_S = 60.0


def _digest(salt: bytes, secret: str) -> bytes:
    return hashlib.sha256(salt + secret.encode("utf-8")).digest()


class PairThrottle:
    """Per-address backoff for wrong pairing codes: after FREE_FAILURES, each further wrong code
    doubles the wait (1 s, 2 s, 4 s ... up to an hour). IPv6 clients count per /64, since one
    host can use a whole /64."""

    def __init__(self) -> None:
        self._seen: OrderedDict[str, tuple[int, float]] = OrderedDict()   # key -> (fails, until)

    @staticmethod
    def _key(client: Optional[str]) -> str:
        try:
            ip = ipaddress.ip_address(client or "")
        except ValueError:
            return client or "?"
        if ip.version == 6:
            if ip.ipv4_mapped is not None:
                return str(ip.ipv4_mapped)
            return str(ipaddress.ip_network(f"{ip}/64", strict=False))
        return str(ip)

    def check(self, client: Optional[str], now: float) -> None:
        until = self._seen.get(self._key(client), (0, 0.0))[1]
        if now < until:
            raise ProtocolError("too_many_attempts",
                                f"too many wrong pairing codes from this address; try again in "
                                f"{until - now:.0f} s")

    def failed(self, client: Optional[str], now: float) -> None:
        key = self._key(client)
        fails = self._seen.pop(key, (0, 0.0))[0] + 1
        wait = 0.0 if fails < FREE_FAILURES else min(2.0 ** (fails - FREE_FAILURES), MAX_BACKOFF_S)
        self._seen[key] = (fails, now + wait)
        while len(self._seen) > THROTTLED_ADDRESSES:
            self._seen.popitem(last=False)

    def succeeded(self, client: Optional[str]) -> None:
        self._seen.pop(self._key(client), None)


class Auth:
    def __init__(self, db: sqlite3.Connection):
        self.db = db
        self.throttle = PairThrottle()

    # ---- pairing codes -------------------------------------------------------------------
    def new_code(self, now: Optional[float] = None) -> str:
        now = time.time() if now is None else now
        code = f"{secrets.randbelow(10**6):06d}"
        salt = secrets.token_bytes(16)
        self.db.execute("DELETE FROM pair_codes WHERE expires < ?", (now,))
        self.db.execute("INSERT INTO pair_codes (hash, salt, created, expires) VALUES (?,?,?,?)",
                        (_digest(salt, code), salt, now, now + CODE_TTL_S))
        return code

    def redeem(self, code: object, name: object,
               client: Optional[str] = None) -> Optional[tuple[str, str]]:
        """Exchange a one-time code for a new token; None if the code is not valid.

        Wrong codes slow down only the address that sent them (too_many_attempts), so a guesser
        on the LAN cannot make the owner's code useless for the owner's own client.
        """
        now = time.time()
        self.throttle.check(client, now)
        if not isinstance(code, str) or not isinstance(name, str):
            return None
        self.db.execute("BEGIN IMMEDIATE")
        try:
            rows = self.db.execute("SELECT hash, salt FROM pair_codes WHERE expires >= ?",
                                   (now,)).fetchall()
            match = next((h for h, s in rows if hmac.compare_digest(h, _digest(s, code))), None)
            if match is None:
                self.db.execute("COMMIT")
                self.throttle.failed(client, now)
                return None
            self.db.execute("DELETE FROM pair_codes WHERE hash = ?", (match,))
            result = self._new_token(name[:100] or "unnamed", now)
            self.db.execute("COMMIT")
            self.throttle.succeeded(client)
            return result
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

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


def needs_token(lan: bool, origin: Optional[str]) -> bool:
    """LAN mode always; on loopback whenever the client's host sent an Origin: a web page, or a
    panel whose host adds one (PROTOCOL.md section 2)."""
    return lan or origin is not None


def bearer(header: Optional[str]) -> Optional[str]:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None
