"""A box runs cluster work only for a head holding a token the box issued (LAN pairing)."""
from __future__ import annotations

import pytest

from server.auth import Auth
from server.farm.pairing import BoxGate, NotPaired
from server.store import open_db


def _paired_token(data_dir) -> str:
    auth = Auth(open_db(data_dir))
    code = auth.new_code()
    return auth.redeem(code, "studio head")[0]


def test_a_box_admits_only_a_head_it_paired_with(tmp_path):
    token = _paired_token(tmp_path)
    gate = BoxGate(head_box=False, data_dir=tmp_path)
    with pytest.raises(NotPaired):
        gate.check()                       # nothing runs before the head proves the pairing
    assert not gate.admit("a-token-this-box-never-issued")
    assert not gate.admit(None)
    with pytest.raises(NotPaired):
        gate.check()
    assert gate.admit(token)
    gate.check()


def test_a_box_that_never_ran_seamwise_admits_no_one(tmp_path):
    gate = BoxGate(head_box=False, data_dir=tmp_path / "empty")
    assert gate.server_id is None and not gate.admit("anything")
    assert not (tmp_path / "empty").exists()     # and its disk is left alone


def test_the_heads_own_box_needs_no_token(tmp_path):
    gate = BoxGate(head_box=True, data_dir=tmp_path)
    gate.check()
    assert gate.admit(None)
