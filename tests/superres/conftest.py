"""Fixtures of the super-resolution tests: a folder of small real images and a tiny trained run."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # superres_images, importable by name as tests/fixtures are

from superres_images import QUICK, write_images  # noqa: E402


@pytest.fixture(scope="session")
def sr_folder(tmp_path_factory) -> Path:
    """train/{a,b}/*.png (8 images) and test/*.png (3 images), 32×32 (do not modify: shared)."""
    root = tmp_path_factory.mktemp("sr")
    write_images(root / "train" / "a", 4, seed=1)
    write_images(root / "train" / "b", 4, seed=2)
    write_images(root / "test", 3, seed=3)
    return root


@pytest.fixture(scope="session")
def sr_run(sr_folder, tmp_path_factory) -> tuple[Path, object]:
    """A tiny VDSR trained ×2 for 30 iterations on `sr_folder`: (run folder, result)."""
    from resnet.superres import train

    out = tmp_path_factory.mktemp("srrun")
    result = train("vdsr", sr_folder, 2, out, QUICK, iters=30, progress=False)
    return out, result
