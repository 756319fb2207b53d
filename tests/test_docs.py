"""Every shell example of README.md and docs/ works as written.

Each fenced `sh` block runs in bash, in one sandbox folder for all of them (README first, so later
examples find what the quick start made), with `resnet` a function that records its arguments
instead of running them; so variables, loops and `&&` chains expand as they would for a user. The
recorded commands then run in-process, at tiny sizes (a few iterations, small batches), on stand-ins
the sandbox holds for the data the docs name: `cifar10-jpeg.tar.gz` (the ten CIFAR classes, a few
images each) and `photos/` (larger images in class folders). Commands that need what a test cannot
have (a GPU, other libraries' files) are only parsed. Synopses (`--model NAME [--set ...]`) are
fenced as `text`, not `sh`.
"""

import os
import re
import shutil
import subprocess
import tarfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import resnet
from resnet.cli import build_parser, main

ROOT = Path(__file__).parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
EXAMPLES = Path(resnet.__file__).parent / "assets" / "examples"
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
# Commands that need what the tests cannot have: parsed only. (token in the command, why)
PARSE_ONLY = [
    ("cuda", "a GPU"),
    (".th", "the published checkpoints of pytorch_resnet_cifar10"),
    ("imagenet", "ImageNet or torchvision's published weights (a download)"),
    ("sk/", "scikit-image's photographs"),
    ("--download", "a download"),
]
# The stand-ins hold a few images where the data the docs name holds thousands: commands on them train
# with small batches. Every other command (the embedded subset, the shipped examples) keeps the batch
# size it documents, so that a batch larger than the data fails here as it would for a user.
STAND_INS = ("cifar10-jpeg", "photos")
RECORDER = r"""
resnet() { printf '%s\x1f' "$@" >> "$RECORD"; printf '\x1e' >> "$RECORD"; }
torchrun() { while [ "$1" != "-m" ]; do shift; done; shift 2; printf 'torchrun\x1f' >> "$RECORD"; resnet "$@"; }
srun() { "$@"; }
nohup() { :; }; scontrol() { :; }; python() { :; }
"""


def shell_blocks(path: Path) -> list[str]:
    return re.findall(r"```(?:sh|bash)\n(.*?)```", path.read_text(), re.S)


def recorded(block: str, sandbox: Path) -> list[list[str]]:
    """The resnet commands `block` runs, as argument lists, expanded by bash."""
    script = block.replace(".venv/bin/resnet", "resnet").replace("scripts/setup.sh", "true")
    script = re.sub(
        r"(\.venv/bin/)?python -m (resnet|pytest|jupyter)\b", lambda m: "resnet" if m[2] == "resnet" else ":", script
    )
    record = sandbox / ".record"
    record.write_bytes(b"")
    env = {"RECORD": str(record), "PATH": "/usr/bin:/bin", "HOME": str(sandbox)}
    done = subprocess.run(["bash", "-c", RECORDER + script], cwd=sandbox, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"the shell rejects:\n{block}\n{done.stderr}"
    return [c.split("\x1f")[:-1] for c in record.read_text().split("\x1e")[:-1]]


def tiny(argv: list[str]) -> list[str]:
    """`argv` at test size: a few iterations, small batches, no worker processes."""
    argv = list(argv)
    command = argv[0] if argv[0] != "superres" else f"superres {argv[1]}"
    for flag in ("--iters", "--epochs"):
        while flag in argv:
            del argv[argv.index(flag) : argv.index(flag) + 2]
    resumed = "--resume" in argv
    data = argv[argv.index("--data") + 1] if "--data" in argv else ""
    if command in ("train", "finetune", "reproduce") and not resumed:
        argv += ["--iters", "2", "--set", "data.workers=0", "--set", "log.evals=1"]
        argv += ["--set", "batch_size=8"] if any(name in data for name in STAND_INS) else []
    sizes = {
        "mlp": ["--blocks", "1", "2"],
        "degradation": ["--depths", "20", "--seeds", "1"],
        "shortcuts": ["--depth", "20"],
        "lesion": ["--depth", "20", "--images", "4", "--draws", "1"],
    }
    if command == "reproduce":
        # the experiment's size: its smallest networks
        for flag in ("--blocks", "--depths", "--depth", "--seeds", "--images", "--draws"):
            if flag in argv:
                end = argv.index(flag) + 1
                while end < len(argv) and not argv[end].startswith("--"):
                    end += 1
                del argv[argv.index(flag) : end]
        argv += sizes[argv[1]]
    if command == "superres train" and not resumed:
        argv += ["--iters", "2", "--set", "batch_size=2", "--set", "evals=1", "--set", "eval_images=2"]
        argv += ["--set", "patch_size=16"]
    return argv


def parse_only(argv: list[str]) -> str | None:
    """Why `argv` cannot run in a test, or None."""
    if argv[0] == "torchrun":
        return "several processes"
    if argv[0] == "reproduce" and not {"--preset", "--quick", "--iters"} & set(argv) and argv[1] != "mlp":
        return "the paper's 64,000 iterations per model (the presets run the same code)"
    for token, why in PARSE_ONLY:
        if any(token in a for a in argv):
            return why
    return None


def _image(rng, side: int) -> Image.Image:
    return Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def sandboxes(tmp_path_factory):
    """A working folder for each documentation file (see `sandbox`)."""
    made = {}

    def get(path: str) -> Path:
        if path not in made:
            made[path] = _sandbox(tmp_path_factory.mktemp("docs"), made.get("README.md"))
        return made[path]

    return get


def _sandbox(root: Path, readme: Path | None) -> Path:
    """A working folder with the stand-ins, the examples at the paths the docs give, the run folders of
    results/, and the quick start's runs/r20 (the README's, when its examples ran first)."""
    (root / "src" / "resnet" / "assets").mkdir(parents=True)
    shutil.copytree(EXAMPLES, root / "src" / "resnet" / "assets" / "examples")
    rng = np.random.default_rng(0)
    staging = root / ".staging" / "cifar10-jpeg"
    for split, count in (("train", 4), ("test", 2)):
        for name in CLASSES:
            (staging / split / name).mkdir(parents=True)
            for i in range(count):
                _image(rng, 32).save(staging / split / name / f"{i:04d}.jpg")
    with tarfile.open(root / "cifar10-jpeg.tar.gz", "w:gz") as tar:
        tar.add(staging, arcname="cifar10-jpeg")
    # the long runs carried in the repository, without their checkpoints: `resnet compare` reads them
    shutil.copytree(ROOT / "results", root / "results", ignore=shutil.ignore_patterns("*.pt", "*.log", ".lock"))
    for name in ("cat", "dog"):
        (root / "photos" / name).mkdir(parents=True)
        for i in range(5):
            _image(rng, 64).save(root / "photos" / name / f"{i}.png")
    if readme is not None and (readme / "runs" / "r20").is_dir():
        shutil.copytree(readme / "runs" / "r20", root / "runs" / "r20")
    elif readme is not None:
        with _inside(root):
            assert main(tiny(["train", "--recipe", "fast", "--out", "runs/r20"])) == 0
    return root


@contextmanager
def _inside(folder: Path):
    before = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def commands() -> list[tuple[str, int, str]]:
    return [
        (path.relative_to(ROOT).as_posix(), i, block) for path in DOCS for i, block in enumerate(shell_blocks(path))
    ]


def test_the_docs_have_shell_examples():
    assert len(commands()) > 20 and any("README.md" == path for path, _, _ in commands())


@pytest.mark.parametrize("path, index, block", commands(), ids=[f"{p}#{i}" for p, i, _ in commands()])
def test_shell_example(sandboxes, monkeypatch, path, index, block):
    if path != "README.md":
        sandboxes("README.md")  # first: the README's quick start makes runs/r20
    sandbox = sandboxes(path)
    monkeypatch.chdir(sandbox)
    parser = build_parser()
    for argv in recorded(block, sandbox):
        why = parse_only(argv)
        argv = argv[1:] if argv[0] == "torchrun" else argv
        if why is None:
            code = main(tiny(argv))
            assert code == 0, f"{path}: `resnet {' '.join(argv)}` exits with {code}"
        else:
            parser.parse_args(argv)  # exits (SystemExit) on an unknown option or a bad value
