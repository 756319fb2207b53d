import json
import os
import re

import pytest
from datasets import QUICK

from resnet import UsageError, checkpoint, run_folder, train

HALF_ROW = '{"step": 40, "test_err'  # what a process killed while appending a row leaves


def _log(folder, steps, name=run_folder.METRICS, tail=""):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("".join(json.dumps({"step": s}) + "\n" for s in steps) + tail)


def test_a_new_run_goes_to_out_or_a_dated_folder_under_runs(tmp_path):
    assert run_folder.new(tmp_path / "r", "resnet20-fast") == tmp_path / "r"
    default = run_folder.new(None, "resnet20-fast")
    assert default.parent == run_folder.RUNS and re.fullmatch(r"resnet20-fast-\d{8}-\d{6}", default.name)


def test_a_folder_holding_a_run_is_refused_unless_forced(tmp_path):
    _log(tmp_path, [10])
    assert run_folder.new(tmp_path, "x") == tmp_path  # logs alone are no run: nothing to continue
    checkpoint.save({"step": 10}, tmp_path / run_folder.LAST)
    with pytest.raises(UsageError, match=f"^{re.escape(str(tmp_path))} already holds a run: --resume continues it"):
        run_folder.new(tmp_path, "x")
    assert run_folder.new(tmp_path, "x", force=True) == tmp_path


def test_a_finished_run_that_dropped_its_checkpoint_is_kept(tmp_path):
    """A finished run may keep only its logs, summary and final weights: a new run into its folder
    would overwrite them, and there is nothing to resume from."""
    _log(tmp_path, [10])
    run_folder.write_summary(tmp_path, {"step": 10})
    with pytest.raises(UsageError, match=f"^{re.escape(str(tmp_path))} already holds a run: --force replaces it$"):
        run_folder.new(tmp_path, "x")
    with pytest.raises(UsageError, match="the run has finished and keeps no last.pt to continue from"):
        run_folder.resume(tmp_path)
    assert run_folder.new(tmp_path, "x", force=True) == tmp_path
    assert run_folder.read(tmp_path) == [{"step": 10}]


def test_resume_needs_out_and_a_last_checkpoint(tmp_path):
    with pytest.raises(UsageError, match="--resume needs --out, the folder of the run to continue"):
        run_folder.resume(None)
    with pytest.raises(UsageError, match="last.pt: no such checkpoint"):
        run_folder.resume(tmp_path)
    checkpoint.save({"step": 10}, tmp_path / run_folder.LAST)
    folder, state = run_folder.resume(str(tmp_path))
    assert folder == tmp_path and state["step"] == 10


def test_a_half_written_last_row_is_ignored(tmp_path):
    _log(tmp_path, [10, 20, 30], tail=HALF_ROW)
    assert [r["step"] for r in run_folder.read(tmp_path)] == [10, 20, 30]
    assert run_folder.read(tmp_path, run_folder.DIAGNOSTICS) == []  # a missing log has no rows


def test_a_resumed_run_keeps_the_rows_up_to_its_checkpoint(tmp_path):
    _log(tmp_path, [10, 20, 30], tail=HALF_ROW)
    _log(tmp_path, [0, 10, 20, 30], run_folder.DIAGNOSTICS)
    run_folder.prepare(tmp_path, {"model": "resnet20"}, 20, (run_folder.METRICS, run_folder.DIAGNOSTICS))
    assert run_folder.read_config(tmp_path) == {"model": "resnet20"}
    assert (tmp_path / run_folder.METRICS).read_text() == '{"step": 10}\n{"step": 20}\n'
    assert [r["step"] for r in run_folder.read(tmp_path, run_folder.DIAGNOSTICS)] == [0, 10, 20]


def test_a_damaged_line_costs_only_itself(tmp_path):
    """A line damaged by hand or by the disk, in the middle of a log: the rows around it are kept when
    the run resumes (not a traceback, not every row after it dropped)."""
    rows = [json.dumps({"step": s}) for s in (10, 20, 30, 40)]
    damaged = [rows[0], '{"step": 2', rows[1], '{"no": "step"}', "[1, 2]", rows[2], "\x00\x00", rows[3]]
    (tmp_path / run_folder.METRICS).write_text("\n".join(damaged) + "\n")
    (tmp_path / run_folder.SESSIONS).write_text('{"step": 5}\n')  # a session row without its keys
    run_folder.prepare(tmp_path, {}, 30, (run_folder.METRICS, run_folder.SESSIONS))
    assert (tmp_path / run_folder.METRICS).read_text() == "".join(row + "\n" for row in rows[:3])
    assert run_folder.sessions(tmp_path) == []


def test_a_run_from_step_0_starts_with_empty_logs(tmp_path):
    _log(tmp_path, [0, 10])  # an older run in the folder, replaced with --force
    _log(tmp_path, [0, 10], run_folder.DIAGNOSTICS)
    run_folder.prepare(tmp_path, {}, 0)
    assert (tmp_path / run_folder.METRICS).read_text() == ""
    assert len(run_folder.read(tmp_path, run_folder.DIAGNOSTICS)) == 2  # not among the logs named


def test_a_row_is_appended_as_one_line(tmp_path):
    run_folder.prepare(tmp_path / "r", {}, 0)
    run_folder.append(tmp_path / "r", {"step": 10, "test_error": 0.5})
    run_folder.append(tmp_path / "r", {"step": 0}, run_folder.DIAGNOSTICS)
    assert (tmp_path / "r" / run_folder.METRICS).read_text() == '{"step": 10, "test_error": 0.5}\n'
    assert run_folder.read(tmp_path / "r", run_folder.DIAGNOSTICS) == [{"step": 0}]


def test_the_summary_is_written_whole_or_not_at_all(tmp_path, monkeypatch):
    assert not run_folder.finished(tmp_path)
    run_folder.write_summary(tmp_path, {"steps": 10})
    assert run_folder.finished(tmp_path) and json.loads((tmp_path / run_folder.SUMMARY).read_text()) == {"steps": 10}

    def crash(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="No space left"):
        run_folder.write_summary(tmp_path, {"steps": 20})
    assert json.loads((tmp_path / run_folder.SUMMARY).read_text()) == {"steps": 10}
    assert [p.name for p in tmp_path.iterdir()] == [run_folder.SUMMARY]  # no temporary file left


def test_a_run_killed_while_logging_resumes(image_folder, tmp_path):
    settings = {**QUICK, "log.every": 2}
    paused = train(
        "resnet20", str(image_folder), "cifar-paper", tmp_path, settings, iters=6, stop_after=4, progress=False
    )
    assert not paused.finished and not run_folder.finished(tmp_path)
    with open(tmp_path / run_folder.METRICS, "a") as f:
        f.write(HALF_ROW)
    result = train(out=tmp_path, resume=True, progress=False)
    assert [r["step"] for r in run_folder.read(tmp_path)] == [2, 4, 6]
    assert json.loads((tmp_path / run_folder.SUMMARY).read_text())["final"]["test_error"] == result.test_error
