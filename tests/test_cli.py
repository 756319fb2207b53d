import json
import subprocess
import sys

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
    assert done.stderr.strip().splitlines() == [
        "resnet models: error: unknown family 'nope'; choose one of: imagenet, cifar"
    ]


def test_unknown_command_is_one_line_and_exit_2(capsys):
    try:
        main(["modles"])
    except SystemExit as e:
        assert e.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "invalid choice: 'modles'" in err[0]
