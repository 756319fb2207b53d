"""Every kind of bad input gets one clear line naming the culprit, exit code 2, and no good output
overwritten (the command-line face of resnet.errors.UsageError)."""

import contextlib
import io
import subprocess

import numpy as np
import pytest
import torch
from PIL import Image

from resnet import checkpoint
from resnet.cli import main


def _run(*args) -> subprocess.CompletedProcess:
    """The command line, in this process (the subprocess path is covered by tests/test_cli.py)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(map(str, args)))
        except SystemExit as e:
            code = e.code
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def _one_line(done, *texts):
    assert done.returncode == 2, (done.returncode, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    for text in texts:
        assert text in lines[0], lines[0]


def _images(folder):
    """A zoo of image files: the valid ones of every mode, and the broken ones."""
    folder.mkdir()
    rgb = Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8))
    rgb.convert("L").save(folder / "gray.png")
    rgb.convert("RGBA").save(folder / "rgba.png")
    rgb.convert("P").save(folder / "palette.png")
    rgb.convert("CMYK").save(folder / "cmyk.jpg")
    Image.fromarray(np.full((40, 40), 40000, dtype=np.uint16)).save(folder / "sixteen.png")
    rgb.save(folder / "good.jpg")
    (folder / "truncated.jpg").write_bytes((folder / "good.jpg").read_bytes()[:300])
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.png").write_text("this is not an image")
    Image.new("1", (10_000, 10_000)).save(folder / "bomb.png")  # 100 million pixels: over PIL's limit
    return folder


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    return _images(tmp_path_factory.mktemp("zoo") / "images")


def test_valid_images_of_every_mode_are_converted(trained_run, zoo):
    names = ["gray.png", "rgba.png", "palette.png", "cmyk.jpg", "sixteen.png", "good.jpg"]
    done = _run("predict", trained_run / "last.pt", *(zoo / n for n in names), "--topk", "1")
    assert done.returncode == 0, done.stderr
    assert [line.split(":")[0] for line in done.stdout.splitlines()] == [str(zoo / n) for n in names]


@pytest.mark.parametrize(
    "name, text",
    [
        ("truncated.jpg", "unreadable image"),
        ("empty.jpg", "not an image"),
        ("text.png", "not an image"),
        ("bomb.png", "refused, more pixels than the limit"),
    ],
)
def test_broken_images_are_named(trained_run, zoo, name, text):
    _one_line(_run("predict", trained_run / "last.pt", zoo / name), name, text)


def test_config_errors(tmp_path, trained_run):
    recipe = tmp_path / "bad.yaml"
    cases = {
        "batch_size: [1,\n": "malformed YAML",
        "batch_sise: 12\niters: 3\n": "unknown key 'batch_sise'",
        "batch_size: many\niters: 3\n": "batch_size must be int",
        "batch_size: 16\niters: 3\noptimizer: {momentum: -0.5}\n": "optimizer.momentum must not be negative",
        "- a list\n": "a recipe is a mapping",
    }
    for text, message in cases.items():
        recipe.write_text(text)
        _one_line(_run("train", "--recipe", recipe, "--out", trained_run), message)
    assert (trained_run / "summary.json").exists()  # the good run there is untouched


def _checkpoint_variants(trained_run, folder):
    state = checkpoint.load(trained_run / "last.pt")
    folder.mkdir()
    other = {k: v for k, v in state.items() if k not in ("format", "version", "digest")}
    other["model_name"] = "resnet56"
    checkpoint.save(other, folder / "other_model.pt")
    newer = dict(state, version=99)
    torch.save(newer, folder / "other_version.pt")

    class Payload:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"format": checkpoint.FORMAT, "version": 1, "x": Payload()}, folder / "code.pt")
    damaged = bytearray((trained_run / "last.pt").read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    (folder / "bitflip.pt").write_bytes(damaged)
    return folder


@pytest.mark.parametrize(
    "name, text",
    [
        ("other_model.pt", "weights do not fit resnet56"),
        ("other_version.pt", "format version 99 is not supported"),
        ("code.pt", "refused"),
        ("bitflip.pt", "damaged"),
    ],
)
def test_bad_checkpoints(trained_run, tmp_path, name, text):
    folder = _checkpoint_variants(trained_run, tmp_path / "ckpt")
    report = tmp_path / "report"
    report.mkdir()
    (report / "metrics.json").write_text("good")
    for command in (["eval", folder / name, "--out", report], ["predict", folder / name, trained_run / "curves.png"]):
        _one_line(_run(*command), name, text)
    assert (report / "metrics.json").read_text() == "good"


def _not_checkpoints(folder):
    """Files a newcomer passes for a checkpoint: an ONNX model (also under another name), an image, noise."""
    onnx = pytest.importorskip("onnx")
    folder.mkdir()
    x, y = (onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, [1, 3]) for n in "xy")
    graph = onnx.helper.make_graph([onnx.helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    model = onnx.helper.make_model(graph, producer_name="pytorch").SerializeToString()
    (folder / "best.onnx").write_bytes(model)
    (folder / "model.bin").write_bytes(model)
    Image.new("RGB", (8, 8)).save(folder / "cat.png")
    (folder / "noise.pt").write_bytes(np.random.default_rng(0).bytes(2000))
    lfs = "version https://git-lfs.github.com/spec/v1\noid sha256:{}\nsize 2243673\n".format("0" * 64)
    (folder / "last.pt").write_text(lfs)  # a clone without Git LFS
    return folder


@pytest.mark.parametrize(
    "name, text",
    [
        ("best.onnx", "best.onnx: an ONNX model, not a checkpoint: run it with ONNX Runtime"),
        ("model.bin", "model.bin: an ONNX model, not a checkpoint"),
        ("cat.png", "cat.png: a PNG image, not a checkpoint: resnet predict CHECKPOINT"),
        ("noise.pt", "noise.pt: not a checkpoint: neither a PyTorch file"),
        ("last.pt", "last.pt: a Git LFS pointer, not a checkpoint: the file itself is fetched by `git lfs pull`"),
    ],
)
def test_a_file_that_is_no_checkpoint_is_named_for_what_it_is(tmp_path, name, text):
    folder = _not_checkpoints(tmp_path / "files")
    for command in (["eval", folder / name], ["predict", folder / name, folder / "cat.png"]):
        done = _run(*command)
        _one_line(done, text)
        assert "weights_only" not in done.stderr and "False" not in done.stderr
