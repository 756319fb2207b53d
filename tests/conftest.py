import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

FIXTURES = Path(__file__).parent / "fixtures"
sys.path.insert(0, str(FIXTURES))

from datasets import QUICK, make_image_folder  # noqa: E402


def pytest_configure(config):
    """A pytest-xdist worker (the suite runs one per core) computes on one thread, and so do the
    processes its tests start: two threads per worker would contend for the cores the other worker uses."""
    if hasattr(config, "workerinput"):
        os.environ["OMP_NUM_THREADS"] = "1"
        torch.set_num_threads(1)


# The suite's longest files, started first: the workers take files in the order collected, and one long
# file taken last would run alone at the end while the other worker waits.
LONGEST_FIRST = (
    "test_tutorial.py",
    "test_benchmarks.py",
    "test_faults.py",
    "test_reproduce.py",
    "test_docs.py",
    "test_distributed.py",
    "test_cli.py",
)


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Decoded data sets and model descriptions are cached in a folder of the test session, not the user's,
    one for all its xdist workers (entries are written whole, by a rename)."""
    root = tmp_path_factory.getbasetemp()
    cache = (root.parent if "PYTEST_XDIST_WORKER" in os.environ else root) / "cache"
    cache.mkdir(exist_ok=True)
    os.environ["RESNET_CACHE"] = str(cache)


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same random state."""
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory) -> Path:
    """Three color classes, 40 train and 10 test 32×32 PNGs each (do not modify: shared)."""
    return make_image_folder(tmp_path_factory.mktemp("colors"))


@pytest.fixture(scope="session")
def trained_run(image_folder, tmp_path_factory) -> Path:
    """A resnet20 trained for 30 iterations on the color folder (do not modify: shared)."""
    from resnet import train

    out = tmp_path_factory.mktemp("run")
    train("resnet20", str(image_folder), "cifar-paper", out, QUICK, iters=30, device="cpu", force=True, progress=False)
    return out


@pytest.fixture
def transforms():
    """torchvision.transforms (the optional augment extra); the test is skipped, saying why, without it."""
    try:
        from torchvision import transforms
    except (ImportError, RuntimeError, OSError) as e:  # RuntimeError: a build for another torch fails to load
        pytest.skip(f"torchvision is missing or does not load with this torch ({type(e).__name__}: {e})")
    return transforms


@pytest.fixture
def tmpfs(tmp_path):
    """mount(size) -> a fresh folder on a tmpfs of `size` ("3m"): a real disk that fills up. Only root
    can mount one (CI runs as root); elsewhere, or where mounting is refused, the test is skipped with why."""
    mounted = []

    def mount(size: str) -> Path:
        if os.geteuid() != 0 or not shutil.which("mount"):
            pytest.skip("a real full disk needs a tmpfs, and only root can mount one (CI runs as root)")
        disk = tmp_path / f"disk{len(mounted)}"
        disk.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(disk)], capture_output=True)
        if done.returncode:
            pytest.skip(f"mount refused a tmpfs (a container without CAP_SYS_ADMIN?): {done.stderr.decode().strip()}")
        mounted.append(disk)
        return disk

    yield mount
    for disk in mounted:
        subprocess.run(["umount", str(disk)], check=True)


class _StandIn:
    """A torchvision-shaped policy that draws from torch's global generator as torchvision's do: it rolls
    the image by a random offset per operation (where torchvision does not load, our seeding and
    batching are tested against it)."""

    def __init__(self, num_ops=1, magnitude=0, interpolation=None):
        self.num_ops, self.magnitude, self.interpolation = num_ops, magnitude, interpolation

    def __call__(self, image):
        pixels = torch.from_numpy(np.array(image)) if isinstance(image, Image.Image) else image
        dims = (0, 1) if isinstance(image, Image.Image) else (-2, -1)
        for _ in range(self.num_ops):
            pixels = pixels.roll(tuple(torch.randint(0, 7, (2,)).tolist()), dims)
        return Image.fromarray(pixels.numpy()) if isinstance(image, Image.Image) else pixels


@pytest.fixture(params=["torchvision", "stand-in"])
def policies(request, monkeypatch):
    """torchvision.transforms, or (always, also where torchvision does not load) a stand-in module of
    the same shape installed as torchvision."""
    if request.param == "torchvision":
        return request.getfixturevalue("transforms")
    transforms = types.SimpleNamespace(
        InterpolationMode=types.SimpleNamespace(BILINEAR="bilinear"), RandAugment=_StandIn, TrivialAugmentWide=_StandIn
    )
    monkeypatch.setitem(sys.modules, "torchvision", types.SimpleNamespace(transforms=transforms))
    return transforms


@pytest.fixture(scope="session", autouse=True)
def lesions_on_pytorch():
    """Lesion studies run in the test process evaluate on PyTorch: OpenVINO's runtime, once loaded into
    it, has made a later test's SIGTERM crash the process (a segmentation fault). The OpenVINO path has
    its own test, in a process of its own (tests/analysis/test_lesion.py)."""
    from resnet.analysis.experiments.lesion import Lesion

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Lesion, "_engine", None)
        yield
