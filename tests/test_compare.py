"""Runs side by side (`resnet compare`), and the record of the sessions that trained a run."""

import json
import shutil
from statistics import mean

import pytest
from datasets import QUICK

import resnet
from resnet import UsageError, run_folder
from resnet.cli import main
from resnet.compare import compare, hours, markdown, paper_error, plot, stretches, summarize
from resnet.plots import error_curves
from resnet.train.runtime import hardware, resolve_precision
from resnet.train.stop import format_duration


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A resnet20 trained in two sessions: 3 steps, then (resumed) the other 3; between them, a row of
    sessions.jsonl as a process killed after its checkpoint would leave it."""
    out = tmp_path_factory.mktemp("compare") / "resnet20"
    resnet.train("resnet20", None, "cifar-paper", out, QUICK, iters=6, progress=False, stop_after=3)
    stale = {**run_folder.read(out, run_folder.SESSIONS)[-1], "step": 5, "seconds": 99.0}
    run_folder.append(out, stale, run_folder.SESSIONS)
    resnet.train(out=out, resume=True, progress=False)
    return out


def test_each_session_is_recorded_once_with_its_hardware(run):
    sessions = run_folder.sessions(run)
    assert [(s["from"], s["step"]) for s in sessions] == [(0, 3), (3, 6)]  # the stale row was dropped on resuming
    here = (hardware("cpu"), resolve_precision("auto", "cpu"))
    assert all((s["hardware"], s["precision"]) == here for s in sessions)
    assert all(0 < s["seconds"] < 99 for s in sessions) and sessions[0]["started"] <= sessions[1]["started"]


def test_sessions_started_within_the_same_second_are_two(tmp_path):
    row = {"started": "2026-12-04T07:00:00+00:00", "hardware": "cpu", "precision": "fp32"}
    rows = [{**row, "from": 0, "step": 2, "seconds": 1.0}, {**row, "from": 0, "step": 3, "seconds": 1.5}]
    rows += [{**row, "from": 3, "step": 4, "seconds": 0.5}, {**row, "from": 4, "step": 4, "seconds": 0.1}]
    for r in rows:
        run_folder.append(tmp_path, r, run_folder.SESSIONS)
    assert [(s["from"], s["step"], s["seconds"]) for s in run_folder.sessions(tmp_path)] == [(0, 3, 1.5), (3, 4, 0.5)]


def test_the_row_is_the_last_evaluation_not_the_best(run):
    row = summarize(run)
    evals = [r["test_error"] for r in run_folder.read(run)]
    assert (row.step, row.total, row.finished, row.model, row.recipe) == (6, 6, True, "resnet20", "cifar-paper")
    assert row.final_error == evals[-1] and row.last_mean_error == pytest.approx(mean(evals[-3:]))
    assert row.train_error == run_folder.read(run)[-1]["train_error"] and row.paper_error == 0.0875  # Table 6
    assert row.seconds == pytest.approx(sum(s["seconds"] for s in run_folder.sessions(run)))
    assert hours(row) == format_duration(row.seconds)
    assert stretches(row) == [f"0 – 6: {hardware('cpu')}, {resolve_precision('auto', 'cpu')}"]


def test_a_better_earlier_evaluation_is_not_chosen(run, tmp_path):
    folder = shutil.copytree(run, tmp_path / "run")
    rows = [{"step": s, "train_error": 0.2, "test_error": e} for s, e in ((1, 0.5), (2, 0.3), (3, 0.4), (4, 0.35))]
    (folder / run_folder.METRICS).write_text("".join(json.dumps(r) + "\n" for r in rows))
    row = summarize(folder)
    assert (row.step, row.final_error, row.finished) == (4, 0.35, False)
    assert row.last_mean_error == pytest.approx((0.3 + 0.4 + 0.35) / 3)
    assert "| 4 of 6 | 35.00% | 35.00% | 20.00% |" in markdown([row])


def test_the_papers_figure_is_given_only_for_its_own_networks_and_recipe():
    assert paper_error("resnet56", "cifar-paper", {}) == 0.0697
    assert paper_error("resnet110", "cifar-paper", {}) == 0.0643
    assert paper_error("resnet56", "cifar-paper", {"shortcut": "B"}) is None  # Table 6 is of option A
    assert paper_error("resnet56", "fast", {}) is None and paper_error("plain56", "cifar-paper", {}) is None
    assert paper_error("resnet50", "cifar-paper", {}) is None  # an ImageNet network


def test_time_not_recorded_is_said_so(run, tmp_path):
    older = shutil.copytree(run, tmp_path / "older")
    (older / run_folder.SESSIONS).unlink()
    assert hours(summarize(older)) == "not recorded" and stretches(summarize(older)) == []
    later = run_folder.sessions(run)[1:]  # a run begun before sessions were recorded
    (older / run_folder.SESSIONS).write_text("".join(json.dumps(s) + "\n" for s in later))
    assert hours(summarize(older)).startswith("≥ ") and "(timed from step 3)" in hours(summarize(older))


def test_cli_table_json_and_figure(run, tmp_path, capsys):
    png = tmp_path / "curves.png"
    assert main(["compare", str(run), str(run), "--markdown", "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(markdown(compare([run, run]))) and f"wrote {png}" in out
    assert png.read_bytes().startswith(b"\x89PNG")
    assert main(["compare", str(run), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["finished"] and row["final_error"] == run_folder.read(run)[-1]["test_error"]


def test_bad_folders_are_one_line(run, tmp_path, capsys):
    assert main(["compare", str(tmp_path)]) == 2
    error = f"resnet compare: error: {tmp_path}: not a run folder (no config.yaml)"
    assert capsys.readouterr().err.strip() == error
    (tmp_path / "config.yaml").write_text("model: vdsr\nscale: 2\ndata: images/\n")  # a superres run's
    with pytest.raises(UsageError, match="not a run of resnet train or finetune"):
        summarize(tmp_path)
    damaged = shutil.copytree(run, tmp_path / "damaged")
    (damaged / run_folder.CONFIG).write_text("model: [resnet20\n")
    with pytest.raises(UsageError, match="config.yaml: damaged"):
        summarize(damaged)
    (damaged / run_folder.CONFIG).write_text((run / run_folder.CONFIG).read_text())
    (damaged / run_folder.METRICS).write_text("")
    with pytest.raises(UsageError, match="not been evaluated yet"):
        summarize(damaged)


def test_a_run_with_one_evaluation_is_drawn_as_a_point_beside_the_lines():
    from resnet.plots import error_curves

    long = [{"step": s, "train_error": 0.5, "test_error": 0.4} for s in (1000, 2000, 3000)]
    new = [{"step": 1000, "train_error": 0.6, "test_error": 0.45}]  # a run that has just started
    ax = error_curves({"resnet20": long, "resnet56": new})
    drawn = [(line.get_linestyle(), line.get_marker(), len(line.get_xdata())) for line in ax.lines]
    assert drawn == [("--", "None", 3), ("-", "None", 3), ("--", "o", 1), ("-", "o", 1)]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["resnet20", "resnet56"]


def test_sessions_up_to_a_step_end_at_their_last_row_there_or_in_proportion(tmp_path):
    row = {"hardware": "cpu", "precision": "fp32"}
    first = [{**row, "started": "a", "from": 0, "step": s, "seconds": t} for s, t in ((2, 1.0), (3, 1.5))]
    second = [{**row, "started": "b", "from": 3, "step": 7, "seconds": 8.0}]  # one row: checkpointed at its end
    for r in first + second:
        run_folder.append(tmp_path, r, run_folder.SESSIONS)
    spans = lambda until: [(s["from"], s["step"], s["seconds"]) for s in run_folder.sessions(tmp_path, until)]  # noqa: E731
    assert spans(None) == [(0, 3, 1.5), (3, 7, 8.0)]
    assert spans(5) == [(0, 3, 1.5), (3, 5, 4.0)]  # half of the second session's steps: half its time
    assert spans(2) == [(0, 2, 1.0)] and spans(3) == [(0, 3, 1.5)]


def test_runs_of_unequal_length_are_compared_at_matched_iterations(run, tmp_path, capsys, monkeypatch):
    short, long = (shutil.copytree(run, tmp_path / name) for name in ("short", "long"))
    for folder, steps in ((short, 4), (long, 6)):
        rows = [{"step": s, "train_error": 0.5 - s / 20, "test_error": 0.6 - s / 20} for s in range(1, steps + 1)]
        (folder / run_folder.METRICS).write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert [r.step for r in compare([short, long])] == [4, 6]
    matched = compare([short, long], at="common")
    assert [r.step for r in matched] == [4, 4] and matched[1].final_error == pytest.approx(0.4)
    assert matched[1].last_mean_error == pytest.approx(mean([0.5, 0.45, 0.4]))  # evaluations 2-4, not 4-6
    assert matched[1].seconds < summarize(long).seconds and not matched[1].finished
    assert [r.step for r in compare([short, long], at=5)] == [4, 5]
    png = tmp_path / "matched.png"
    assert main(["compare", str(short), str(long), "--at", "common", "--plot", str(png), "--json"]) == 0
    assert [r["step"] for r in json.loads(capsys.readouterr().out)] == [4, 4] and png.exists()
    drawn = {}
    monkeypatch.setattr(
        "resnet.compare.error_curves", lambda runs, **kw: drawn.update(runs) or error_curves(runs, **kw)
    )
    plot(matched, tmp_path / "again.png")
    assert [[r["step"] for r in rows] for rows in drawn.values()] == [[1, 2, 3, 4]] * 2  # the curves end there too
    with pytest.raises(SystemExit) as usage:
        main(["compare", str(short), "--at", "0"])
    assert usage.value.code == 2 and "a step (a positive whole number) or common, not '0'" in capsys.readouterr().err
    with pytest.raises(UsageError, match="no evaluation at or before step 0"):
        summarize(short, at=0)
