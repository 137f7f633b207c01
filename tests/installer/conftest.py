import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "installer: runs installer/install.sh end to end into a scratch home "
                   "(part of `make test`; about 40 s with uv's cache warm, more on a fresh machine)")
