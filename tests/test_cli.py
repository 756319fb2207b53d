import argparse
import io
import json
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import resnet
from resnet import checkpoint
from resnet.cli import main


def test_models_json_lists_every_model(capsys):
    assert main(["models", "--json", "--family", "cifar"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["resnet56"]["params"] == 853_018
    assert rows["plain110"]["shortcut"] == "none"
    assert all(r["family"] == "cifar" and r["input_size"] == 32 for r in rows.values())


def test_models_table(capsys):
    assert main(["models", "--family", "imagenet"]) == 0
    out = capsys.readouterr().out
    for text in ("resnet152", "60,192,808", "11.51G", "224×224", "plain34"):
        assert text in out


def test_python_m_resnet_is_the_command():
    done = subprocess.run(
        [sys.executable, "-m", "resnet", "models", "--family", "nope"], capture_output=True, text=True
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "resnet models: error: argument --family: invalid choice: 'nope' (choose from 'imagenet', 'cifar'"
    )


def test_a_reader_that_stops_early_gets_no_traceback():  # `resnet recipes --json | head -1`
    command = [sys.executable, "-m", "resnet", "recipes", "--json"]
    done = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    done.stdout.close()  # gone before the first write: every write meets a closed pipe
    assert done.wait() == 141 and done.stderr.read() == b""


def test_unknown_command_is_one_line_and_exit_2(capsys):
    try:
        main(["modles"])
    except SystemExit as e:
        assert e.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "invalid choice: 'modles'" in err[0]


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str


def _run(*args, cwd=None) -> Done:
    """`resnet ARGS` run in this process (what `python -m resnet` runs; test_python_m_resnet_is_the_command
    checks that the module is the command), its output captured."""
    out, err, before = io.StringIO(), io.StringIO(), os.getcwd()
    try:
        os.chdir(cwd or before)
        with redirect_stdout(out), redirect_stderr(err):
            try:
                code = main([str(a) for a in args])
            except SystemExit as e:  # argparse's usage errors
                code = e.code
    finally:
        os.chdir(before)
    return Done(code, out.getvalue(), err.getvalue())


def _one_line_error(done, *texts):
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    for text in texts:
        assert text in lines[0]


def test_train_contract(image_folder, tmp_path):
    done = _run(
        "train",
        "--model",
        "resnet20",
        "--data",
        image_folder,
        "--recipe",
        "fast",
        "--out",
        tmp_path / "run",
        "--iters",
        "8",
        "--set",
        "batch_size=16",
        "--set",
        "data.workers=0",
        "--device",
        "cpu",
    )
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("final test accuracy ") and "%" in last
    assert {"last.pt", "best.pt", "metrics.jsonl", "curves.png", "config.yaml"} <= {
        p.name for p in (tmp_path / "run").iterdir()
    }


def test_eval_and_predict_commands(trained_run, image_folder, tmp_path):
    done = _run("eval", trained_run / "last.pt", "--out", tmp_path / "report", "--tta", "flip", "--device", "cpu")
    assert done.returncode == 0, done.stderr
    assert "top-1 error" in done.stdout and (tmp_path / "report" / "confusion.png").exists()
    image = sorted((image_folder / "test" / "green").iterdir())[0]
    done = _run("predict", trained_run / "last.pt", image, "--topk", "2", "--json")
    rows = json.loads(done.stdout)
    assert rows[0]["image"] == str(image) and len(rows[0]["top"]) == 2
    assert rows[0]["top"][0]["probability"] >= rows[0]["top"][1]["probability"]


@pytest.mark.parametrize(
    "args, texts",
    [
        (["--data", "{tmp}/missing"], ["missing: no such file or folder"]),
        (["--data", "{tmp}"], ["the folder is empty"]),
        (["--model", "resnet21"], ["unknown model 'resnet21'", "resnet20"]),
        (["--recipe", "nope"], ["unknown recipe 'nope'", "cifar-paper"]),
        (["--set", "optimizer.lrr=1"], ["unknown key 'optimizer.lrr'"]),
        (["--set", "batch_size=-4"], ["batch_size must be positive"]),
        (["--iters", "0"], ["--iters: must be positive"]),
        (["--epochs", "-1"], ["--epochs: must be positive"]),
    ],
)
def test_train_bad_input_is_one_line_and_exit_2(tmp_path, args, texts):
    args = [a.format(tmp=tmp_path) for a in args]
    done = (
        _run("train", "--out", tmp_path / "run", "--iters", "1", *args)
        if "--iters" not in args
        else _run("train", "--out", tmp_path / "run", *args)
    )
    _one_line_error(done, *texts)
    assert not (tmp_path / "run").exists()


def test_class_folder_without_images(tmp_path, image_folder):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(image_folder, data)
    (data / "train" / "purple").mkdir()
    _one_line_error(
        _run("train", "--data", data, "--out", tmp_path / "run", "--iters", "1"), "train/purple has no images"
    )


def test_bad_image_named_and_skipped(tmp_path, image_folder):
    """An unreadable image stops the run naming it; --skip-bad-images leaves the corrupt JPEGs out and
    lists each one in the run folder's skipped-images.txt, which the last lines name."""
    import shutil

    from PIL import Image

    data = tmp_path / "data"
    shutil.copytree(image_folder, data)
    good = data / "train" / "red" / "good.jpg"
    Image.open(data / "train" / "red" / "007.png").convert("RGB").save(good)
    corrupt = {
        data / "train" / "red" / "truncated.jpg": good.read_bytes()[:200],
        data / "train" / "green" / "empty.jpg": b"",
        data / "test" / "blue" / "text.jpg": b"not a JPEG at all",
    }
    for path, content in corrupt.items():
        path.write_bytes(content)
    _one_line_error(_run("train", "--data", data, "--out", tmp_path / "run", "--iters", "1"), ".jpg")
    args = ["--data", data, "--out", tmp_path / "run", "--iters", "2", "--skip-bad-images", "--device", "cpu"]
    done = _run("train", *args, "--set", "batch_size=16")
    assert done.returncode == 0, done.stderr
    listed = tmp_path / "run" / "skipped-images.txt"
    assert sorted(listed.read_text().splitlines()) == sorted(str(path) for path in corrupt)
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["skipped_images"] == 3
    assert f"skipped 3 unreadable images (--skip-bad-images), listed in {listed}" in done.stdout


def test_an_option_and_a_contradicting_set_are_refused(tmp_path, capsys):
    """--download is the recipe key data.download: given two values (by --set too), it is refused as --model is."""
    argv = ["train", "--download", "--set", "data.download=false", "--out", str(tmp_path / "run")]
    assert main(argv) == 2
    assert "data.download is given twice" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_resume_with_another_model(trained_run):
    _one_line_error(
        _run("train", "--resume", "--out", trained_run, "--model", "resnet56"), "checkpoint of resnet20, not resnet56"
    )


def test_eval_of_a_damaged_checkpoint_leaves_the_report_alone(trained_run, tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes((trained_run / "last.pt").read_bytes()[:4000])
    _one_line_error(_run("eval", bad, "--out", tmp_path / "report"), "bad.pt: damaged or truncated")
    assert not (tmp_path / "report").exists()


def test_predict_on_a_bad_image(trained_run, tmp_path):
    junk = tmp_path / "junk.jpg"
    junk.write_text("not a picture")
    _one_line_error(_run("predict", trained_run / "last.pt", junk), "junk.jpg: not an image")


def test_reproduce_command(tmp_path):
    done = _run(
        "reproduce", "shortcuts", "--quick", "--depth", "20", "--iters", "2", "--set", "log.evals=1", "--set", "seed=3",
        "--out", tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "report.html").exists() and (tmp_path / "summary.md").exists()
    runs = {p.name: p for p in (tmp_path / "runs").iterdir()}
    assert sorted(runs) == ["plain20", "resnet20-A", "resnet20-B", "resnet20-C"]
    assert all(yaml.safe_load((p / "config.yaml").read_text())["seed"] == 3 for p in runs.values())  # --set reached
    # the verdict printed is the one the runs' own metrics give (mean of the last three test errors)
    error = {
        name: np.mean([r["test_error"] for r in map(json.loads, (p / "metrics.jsonl").read_text().splitlines())][-3:])
        for name, p in runs.items()
    }
    holds = max(error[f"resnet20-{o}"] for o in "ABC") < error["plain20"]
    verdict = "✅ reproduced" if holds else "❌ not reproduced"
    assert f"- {verdict}: every shortcut option beats the plain net: plain " in done.stdout
    summary = (tmp_path / "summary.md").read_text()
    [line] = [x for x in done.stdout.splitlines() if "every shortcut option beats the plain net" in x]
    assert line in summary.splitlines()  # the report says what the command printed
    for row in ("| none | 269,722 |", "| A | 269,722 |", "| B | 272,474 |", "| C | 283,962 |"):  # each option's size
        assert row in summary


def test_reproduce_bad_depth():
    done = _run("reproduce", "degradation", "--quick", "--depths", "21")
    assert done.returncode == 2 and "6n+2 layers" in done.stderr


def test_recipes_lists_every_key_from_the_configs_definitions(capsys):
    from resnet.config import CHOICES, TrainConfig, to_flat

    assert main(["recipes", "--json"]) == 0
    rows = {r["key"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows.keys() == to_flat(TrainConfig()).keys()
    assert all(r["meaning"] for r in rows.values())  # every key says what it means
    assert rows["schedule.name"]["allowed"] == ", ".join(CHOICES["schedule.name"])
    assert rows["batch_size"] | {"meaning": ""} == {
        "key": "batch_size", "type": "int", "default": 128, "allowed": "> 0", "meaning": ""
    }  # fmt: skip
    assert rows["log.eval_share"]["allowed"] == "in (0, 1]"

    assert main(["recipes", "fast"]) == 0
    out = capsys.readouterr().out
    recipe = yaml.safe_load(open(Path(resnet.__file__).parent / "recipes" / "fast.yaml"))
    line = next(line for line in out.splitlines() if line.split()[:1] == ["batch_size"])
    assert line.split()[1:4] == ["int", "128", str(recipe["batch_size"])]  # type, default, the recipe's value
    assert main(["recipes", "nope"]) == 2


def _commands(parser):
    """(name, parser) of every command and subcommand."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield name, sub
                yield from ((f"{name} {n}", p) for n, p in _commands(sub))


def test_every_option_says_what_it_does_and_its_default():
    from resnet.cli import build_parser

    for name, parser in _commands(build_parser()):
        text = parser.format_help()
        for action in parser._actions:
            if not action.option_strings or action.dest == "help":
                continue
            assert action.help, f"resnet {name} {action.option_strings[0]} has no help"
            if action.default not in (None, False, []):
                shown = " ".join(map(str, action.default)) if isinstance(action.default, list) else str(action.default)
                assert f"default: {shown}" in " ".join(text.split()), f"resnet {name} {action.option_strings[0]}"
        assert "--device" not in text or "(default: auto)" in text or "device key, auto" in text  # one default


def test_plain_train_is_the_main_job_of_minutes_and_the_paper_is_one_option_away(tmp_path, monkeypatch):
    from resnet.errors import Stopped
    from resnet.train import api

    configs = []

    def recorded(config, out, state, **kwargs):  # the run as resolved, not trained
        configs.append(config)
        raise Stopped("recorded", 75)

    monkeypatch.setattr(api, "run", recorded)
    assert main(["train", "--out", str(tmp_path / "default")]) == 75
    assert main(["train", "--recipe", "cifar-paper", "--out", str(tmp_path / "paper")]) == 75
    default, paper = configs
    assert (default.model, default.recipe, default.data.source) == ("resnet20", "fast", None)
    assert (default.epochs, default.batch_size) == (30, 256)  # 585 iterations on the 5,000 images
    assert (paper.recipe, paper.iters, paper.data.source) == ("cifar-paper", 64_000, None)


def test_a_new_length_or_setting_on_resume_is_refused_in_one_line(trained_run):
    _one_line_error(
        _run("train", "--resume", "--out", trained_run, "--iters", "60"),
        f"{trained_run} was set up for 30 iterations",
        "train a new run for 60 iterations",
    )
    _one_line_error(
        _run("train", "--resume", "--out", trained_run, "--set", "optimizer.lr=0.5"),
        "(optimizer.lr: 0.1 there, 0.5 now)",
    )


def test_finetune_resumes_as_its_message_says_and_skips_bad_images(trained_run, tmp_path):
    import shutil

    pets = tmp_path / "pets"
    shutil.copytree(Path(resnet.__file__).parent / "assets" / "examples" / "pets", pets)
    broken = pets / "cat" / "broken.jpg"
    broken.write_bytes((pets / "dog" / "0001.jpg").read_bytes()[:100])
    args = ["--from", trained_run / "best.pt", "--data", pets, "--iters", "4", "--set", "batch_size=8"]
    args += ["--set", "log.evals=1", "--skip-bad-images"]
    straight = _run("finetune", *args, "--out", tmp_path / "straight")
    assert straight.returncode == 0, straight.stderr
    listed = tmp_path / "straight" / "skipped-images.txt"
    assert listed.read_text() == f"{broken}\n"
    assert f"skipped 1 unreadable images (--skip-bad-images), listed in {listed}" in straight.stdout
    overrides = {"batch_size": 8, "log.evals": 1, "data.skip_bad_images": True}
    options = dict(data=str(pets), iters=4, overrides=overrides, progress=False)
    resnet.finetune(str(trained_run / "best.pt"), out=tmp_path / "resumed", stop_after=2, **options)
    assert "--resume continues it" in _run("finetune", *args, "--out", tmp_path / "resumed").stderr
    assert _run("finetune", *args, "--out", tmp_path / "resumed", "--resume").returncode == 0
    straight, resumed = (checkpoint.load(tmp_path / run / "last.pt") for run in ("straight", "resumed"))
    assert resumed["step"] == straight["step"] == 4
    assert all(torch.equal(straight["model"][k], v) for k, v in resumed["model"].items())


# In a fresh interpreter: what each command imports before it works
IMPORTS = """
import contextlib, io, sys
from resnet.cli import main

def imported(*argv):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
        main(list(argv))
    return [m for m in ("torch", "matplotlib") if m in sys.modules]

print(imported("--version"), imported("train", "--help"), imported("models", "--family", "speed"))
"""


def test_version_help_and_models_import_only_what_they_need():
    done = subprocess.run([sys.executable, "-c", IMPORTS], capture_output=True, text=True, timeout=600)
    assert done.stdout.strip() == "[] ['torch'] ['torch']", done.stderr


def test_recipes_print_the_extras_with_their_brackets():
    done = _run("recipes")
    assert "pip install 'resnet[augment]'" in done.stdout and "pip install 'resnet'" not in done.stdout


def test_the_default_output_folders_are_ignored_by_git():
    ignored = subprocess.run(
        ["git", "check-ignore", "reproductions/shortcuts/report.html", "upscaled/ship_x2.png", "runs/r20/best.pt"],
        cwd=Path(__file__).parents[1],
        capture_output=True,
        text=True,
    )
    assert ignored.stdout.split() == ["reproductions/shortcuts/report.html", "upscaled/ship_x2.png", "runs/r20/best.pt"]


def test_a_preset_for_an_experiment_without_presets_names_those_that_have_them(capsys):
    from resnet.analysis.reproduce import PRESETS

    assert main(["reproduce", "mlp", "--preset", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "reproduce mlp has no presets" in err and all(name in err for name in PRESETS)


def test_reproduce_at_an_iteration_is_for_the_reports_that_read_only_the_runs(capsys):
    assert main(["reproduce", "lesion", "--at", "1000"]) == 2
    assert "reproduce lesion measures the trained networks: --at is for degradation, shortcuts, mlp" in (
        capsys.readouterr().err
    )
