import json
import signal
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image
from superres_images import QUICK, TINY_VDSR, write_images

from resnet import UsageError, checkpoint
from resnet.cli import main
from resnet.errors import Stopped
from resnet.superres import apply, load, train
from resnet.superres.data import PatchSampler, downscale, load_images, upscale_bicubic


def test_train_and_test_folders_are_used(sr_folder):
    splits = load_images(sr_folder, cache=False)
    assert len(splits.train) == 8 and len(splits.test) == 3 and not splits.held_out
    assert all(n.startswith("test/") for n in splits.test_names)
    assert splits.train[0].shape == (32, 32, 3) and splits.train[0].dtype == np.uint8


def test_without_split_folders_a_fraction_is_held_out(tmp_path):
    write_images(tmp_path / "photos" / "x", 10)
    with tarfile.open(tmp_path / "photos.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "photos", arcname="photos")
    splits = load_images(tmp_path / "photos.tar.gz", test_fraction=0.2, cache=False)
    assert (len(splits.train), len(splits.test)) == (8, 2) and splits.held_out
    assert not set(splits.train_names) & set(splits.test_names)


def test_low_resolution_inputs_are_pillow_bicubic(sr_folder):
    hr = np.asarray(Image.open(sr_folder / "test" / "00.png"))
    lr = downscale(hr, 2)
    assert lr.shape == (16, 16, 3)
    assert np.array_equal(lr, np.asarray(Image.fromarray(hr).resize((16, 16), Image.Resampling.BICUBIC)))
    assert upscale_bicubic(lr, 2).shape == hr.shape


def test_tiny_run_writes_its_files_and_learns(sr_run):
    out, result = sr_run
    assert {"config.yaml", "metrics.jsonl", "last.pt", "best.pt", "psnr.png", "summary.json"} <= {
        p.name for p in out.iterdir()
    }
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 10, 20, 30]
    assert rows[-1]["train_loss"] < rows[1]["train_loss"]  # the loss falls
    assert rows[-1]["psnr"] > rows[0]["psnr"]  # and the held-out images come out better
    assert len({r["bicubic_psnr"] for r in rows}) == 1  # the same held-out images each time
    summary = json.loads((out / "summary.json").read_text())
    assert summary["test_images"] == 3 and summary["test_split"] == "test folder"
    assert result.psnr == rows[-1]["psnr"] and result.best_psnr == max(r["psnr"] for r in rows)
    state = checkpoint.load(out / "last.pt")
    assert state["task"] == "superres" and state["model_options"] == {**TINY_VDSR, "scale": 2}


def test_apply_writes_upscaled_images_and_measures_them(sr_run, sr_folder, tmp_path):
    out, _ = sr_run
    hr_paths = sorted((sr_folder / "test").iterdir())
    lr_paths = []
    for path in hr_paths:
        lr_paths.append(tmp_path / f"small_{path.name}")
        Image.fromarray(downscale(np.asarray(Image.open(path)), 2)).save(lr_paths[-1])
    rows = apply(out / "last.pt", lr_paths, tmp_path / "up", references=hr_paths)
    assert load(out / "last.pt").scale == 2
    for row in rows:
        assert np.asarray(Image.open(row["output"])).shape == (32, 32, 3)
        assert row["output"].endswith("_x2.png")
    # The run measured the same images (Y channel, 2-pixel border) in the same way; batching may move
    # a rounding, hence the tolerance.
    final = json.loads((out / "summary.json").read_text())["final"]
    for key in ("psnr", "ssim", "bicubic_psnr", "bicubic_ssim"):
        assert np.mean([r[key] for r in rows]) == pytest.approx(final[key], abs=1e-3)


def test_a_silent_residual_upscales_exactly_as_bicubic(sr_run, sr_folder, tmp_path):
    out, _ = sr_run
    state = checkpoint.load(out / "last.pt")
    state["model"]["last.weight"].zero_()
    state["model"]["last.bias"].zero_()
    checkpoint.save(state, tmp_path / "silent.pt")
    lr = tmp_path / "lr.png"
    Image.fromarray(downscale(np.asarray(Image.open(sr_folder / "test" / "01.png")), 2)).save(lr)
    (row,) = apply(tmp_path / "silent.pt", [lr], tmp_path / "up")
    expected = upscale_bicubic(np.asarray(Image.open(lr)), 2)
    assert np.array_equal(np.asarray(Image.open(row["output"])), expected)


def test_cli_train_and_apply(sr_folder, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["--data", str(sr_folder), "--out", str(out), "--iters", "4", "--scale", "4", "--model", "edsr_baseline"]
    sets = ["patch_size=20", "evals=1", "device=cpu", "model_options={num_blocks: 1, width: 8}"]
    assert main(["superres", "train", *args, *(a for s in sets for a in ("--set", s))]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("held-out PSNR ") and "bicubic" in last and last.endswith("after 4 iterations")
    lr = tmp_path / "lr.png"
    Image.open(sr_folder / "test" / "02.png").resize((8, 8), Image.Resampling.BICUBIC).save(lr)
    reference = sr_folder / "test" / "02.png"
    assert (
        main(
            [
                "superres",
                "apply",
                str(out / "last.pt"),
                str(lr),
                "--out",
                str(tmp_path / "up"),
                "--reference",
                str(reference),
            ]
        )
        == 0
    )
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{lr} -> {tmp_path / 'up' / 'lr_x4.png'}: PSNR ") and "bicubic" in line
    assert Image.open(tmp_path / "up" / "lr_x4.png").size == (32, 32)


def _bad_data(tmp_path, kind: str) -> str:
    """A data source with one kind of problem."""
    folder = tmp_path / kind
    if kind == "empty":
        folder.mkdir()
        (folder / "notes.txt").write_text("no images here")
    elif kind == "non-image":
        write_images(folder, 4)
        (folder / "03.png").write_text("not a picture")
    elif kind == "small":
        write_images(folder, 4, size=32)
        write_images(folder / "more", 1, size=12)
    elif kind == "single":
        write_images(folder, 1)
    return str(folder)


@pytest.mark.parametrize(
    "data, extra, texts",
    [
        ("missing", [], ["missing: no such file or folder"]),
        ("empty", [], ["empty: no images found"]),
        ("non-image", [], ["03.png: not an image"]),
        ("small", [], ["more/00.png is 12×12, smaller than the 16×16 training patch"]),
        ("single", [], ["1 image; at least 2 are needed"]),
        ("sr", ["--scale", "3"], ["scale 3 is not supported; choose one of: 2, 4"]),
        ("sr", ["--set", "patch_size=17"], ["patch_size=17 must be a multiple of the scale 2"]),
        ("sr", ["--set", "patch_size=48"], ["is 32×32, smaller than the 48×48 training patch"]),
        ("sr", ["--model", "resnet20"], ["resnet20 is not a super-resolution model; choose one of: vdsr"]),
        ("sr", ["--set", "loss=l3"], ["loss='l3' is not one of: l1, l2"]),
        ("sr", ["--set", "model_options={depth: 3}"], ["vdsr has no option 'depth'"]),
        ("sr", ["--set", "patchsize=16"], ["unknown key 'patchsize'"]),
    ],
)
def test_bad_input_is_one_line_and_exit_2(sr_folder, tmp_path, capsys, data, extra, texts):
    source = str(sr_folder) if data == "sr" else _bad_data(tmp_path, data)
    out = tmp_path / "run"
    argv = ["superres", "train", "--data", source, "--out", str(out), "--iters", "1", "--set", "patch_size=16"]
    assert main([*argv, *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("resnet superres: error: "), err
    for text in texts:
        assert text in err[0]
    assert not out.exists()


def test_a_good_run_is_never_overwritten_by_a_bad_one(sr_run, tmp_path, capsys):
    out, _ = sr_run
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main(["superres", "train", "--data", str(tmp_path / "gone"), "--out", str(out), "--force"]) == 2
    assert main(["superres", "train", "--data", str(tmp_path), "--out", str(out)]) == 2
    assert "already holds a run: --resume continues it, --force replaces it" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_apply_bad_input(sr_run, sr_folder, tmp_path, capsys):
    out, _ = sr_run
    junk = tmp_path / "junk.png"
    junk.write_text("not a picture")
    image = sr_folder / "test" / "00.png"
    other = tmp_path / "classifier.pt"
    checkpoint.save({"model_name": "resnet20"}, other)
    cases = [
        ([str(out / "last.pt"), str(junk)], "junk.png: not an image"),
        ([str(other), str(image)], "classifier.pt: not a super-resolution checkpoint"),
        ([str(out / "last.pt"), str(image), "--reference", str(image)], "is 32×32, not ×2 its image (64×64 expected)"),
        ([str(out / "last.pt"), str(image), str(image)], "two images share a file name"),
    ]
    for args, text in cases:
        assert main(["superres", "apply", *args, "--out", str(tmp_path / "up")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and text in err[0], err
    assert not (tmp_path / "up").exists()


def test_an_interrupted_run_resumes_to_the_same_weights(sr_folder, tmp_path, monkeypatch):
    settings = {**QUICK, "evals": 4}
    whole = train("vdsr", sr_folder, 2, tmp_path / "whole", settings, iters=8, progress=False)
    batch = PatchSampler.batch
    calls = iter(range(100))

    def interrupted(self, size):  # the 7th batch never comes: the run stops after step 6's checkpoint
        if next(calls) == 6:
            raise KeyboardInterrupt
        return batch(self, size)

    monkeypatch.setattr(PatchSampler, "batch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train("vdsr", sr_folder, 2, tmp_path / "cut", settings, iters=8, progress=False)
    monkeypatch.setattr(PatchSampler, "batch", batch)
    assert main(["superres", "train", "--out", str(tmp_path / "cut"), "--resume"]) == 0
    a, b = checkpoint.load(tmp_path / "whole" / "last.pt"), checkpoint.load(tmp_path / "cut" / "last.pt")
    assert a["step"] == b["step"] == 8
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    rows = [json.loads(line) for line in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 2, 4, 6, 8] and rows[-1]["psnr"] == whole.psnr
    with pytest.raises(UsageError, match="is a checkpoint of vdsr, not edsr_baseline"):
        train("edsr_baseline", out=tmp_path / "cut", resume=True)


def test_a_run_interrupted_before_its_first_step_logs_step_0_once(sr_folder, tmp_path, monkeypatch):
    settings = {**QUICK, "evals": 2}
    batch = PatchSampler.batch

    def interrupted(self, size):  # the first batch never comes: the only checkpoint is step 0's
        raise KeyboardInterrupt

    monkeypatch.setattr(PatchSampler, "batch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train("vdsr", sr_folder, 2, tmp_path, settings, iters=4, progress=False)
    assert checkpoint.load(tmp_path / "last.pt")["step"] == 0
    monkeypatch.setattr(PatchSampler, "batch", batch)
    train(out=tmp_path, resume=True, progress=False)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 2, 4]
    assert [r["step"] for r in checkpoint.load(tmp_path / "last.pt")["rows"]] == [0, 2, 4]


def test_python_api_takes_a_mapping(sr_folder, tmp_path):
    result = train("vdsr", sr_folder, 2, tmp_path / "r", {**QUICK, "evals": 1, "loss": "l2"}, iters=2, progress=False)
    assert result.steps == 2 and torch.isfinite(torch.tensor(result.psnr))
    config = checkpoint.load(tmp_path / "r" / "last.pt")["config"]
    assert (config["loss"], config["evals"], config["lr"], config["patch_size"]) == ("l2", 1, 1e-3, 16)
    rows = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 2]  # one evaluation besides the one before training


def test_compare_runs_plots_several_runs(sr_run, tmp_path):
    from resnet.superres import compare_runs

    out, _ = sr_run
    path = compare_runs({"a": out, "b": out}, tmp_path / "both.png", "two runs")
    assert Image.open(path).format == "PNG"
    with pytest.raises(UsageError, match="no metrics.jsonl"):
        compare_runs({"a": tmp_path}, tmp_path / "none.png")
    killed = tmp_path / "killed"  # a run killed while appending a row
    killed.mkdir()
    (killed / "metrics.jsonl").write_text((out / "metrics.jsonl").read_text() + '{"step": 40, "ps')
    assert Image.open(compare_runs({"killed": killed}, tmp_path / "killed.png")).format == "PNG"


def test_a_signal_stops_after_the_step_and_the_resumed_run_is_the_same(sr_folder, tmp_path, monkeypatch):
    settings = {**QUICK, "evals": 4}
    whole = train("vdsr", sr_folder, 2, tmp_path / "whole", settings, iters=8, progress=False)
    batch = PatchSampler.batch
    calls = iter(range(100))

    def signalled(self, size):  # a real SIGTERM to this process during step 5, between evaluations
        if next(calls) == 4:
            signal.raise_signal(signal.SIGTERM)
        return batch(self, size)

    monkeypatch.setattr(PatchSampler, "batch", signalled)
    with pytest.raises(Stopped, match=r"stopped by SIGTERM at step 5 of 8, with a checkpoint; resume with") as stop:
        train("vdsr", sr_folder, 2, tmp_path / "cut", settings, iters=8, progress=False)
    assert stop.value.code == 128 + signal.SIGTERM
    assert checkpoint.load(tmp_path / "cut" / "last.pt")["step"] == 5
    monkeypatch.setattr(PatchSampler, "batch", batch)
    train(out=tmp_path / "cut", resume=True, progress=False)
    a, b = checkpoint.load(tmp_path / "whole" / "last.pt"), checkpoint.load(tmp_path / "cut" / "last.pt")
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    drop = ("images_per_s", "elapsed_s")
    rows = [{k: v for k, v in r.items() if k not in drop} for r in b["rows"]]
    assert rows == [{k: v for k, v in r.items() if k not in drop} for r in a["rows"]]  # train losses too
    assert whole.psnr == rows[-1]["psnr"]


def test_quick_trains_on_the_shipped_images_which_the_default_patch_refuses(tmp_path, capsys):
    from resnet import run_folder
    from resnet.superres.trainer import EXAMPLES

    tiny = ["--set", "model_options={num_layers: 4, width: 16}", "--set", "eval_images=2", "--set", "batch_size=2"]
    shipped = ["--data", str(EXAMPLES), "--iters", "2", "--out", str(tmp_path / "a")]
    assert main(["superres", "train", *shipped, *tiny]) == 2
    assert "smaller than the 48×48 training patch" in capsys.readouterr().err
    assert main(["superres", "train", "--quick", "--iters", "2", "--out", str(tmp_path / "b"), *tiny]) == 0
    config = run_folder.read_config(tmp_path / "b")
    assert (config["patch_size"], config["iters"], config["data"]) == (32, 2, str(EXAMPLES))
