import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
torch.set_num_threads(1)

from tests.fixtures.random_models import tiny_sd, tiny_sdxl  # noqa: E402


@pytest.fixture(scope="session")
def sd_folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sd")
    tiny_sd(root).save_pretrained(root / "pipe")
    return root / "pipe"


@pytest.fixture(scope="session")
def sd_v_folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sdv")
    tiny_sd(root, prediction_type="v_prediction", seed=1).save_pretrained(root / "pipe")
    return root / "pipe"


@pytest.fixture(scope="session")
def sdxl_folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sdxl")
    tiny_sdxl(root).save_pretrained(root / "pipe")
    return root / "pipe"


@pytest.fixture(scope="session")
def sdxl_adapter(sdxl_folder):
    from engine.adapters.loading import load
    return load(str(sdxl_folder))
