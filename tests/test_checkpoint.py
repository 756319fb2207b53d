import pytest
import torch

from resnet import RunError, UsageError, checkpoint


def test_round_trip(tmp_path):
    checkpoint.save({"step": 3, "w": torch.ones(2)}, tmp_path / "last.pt")
    state = checkpoint.load(tmp_path / "last.pt")
    assert state["step"] == 3 and torch.equal(state["w"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left


def test_a_crash_while_writing_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    checkpoint.save({"step": 1}, path)

    def crash(obj, f):
        f.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(RunError, match="disk full"):
        checkpoint.save({"step": 2}, path)
    monkeypatch.undo()
    assert checkpoint.load(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_truncated_checkpoint_is_detected(tmp_path):
    path = tmp_path / "last.pt"
    checkpoint.save({"w": torch.randn(1000)}, path)
    path.write_bytes(path.read_bytes()[:1500])
    with pytest.raises(UsageError, match="damaged or truncated"):
        checkpoint.load(path)


def test_code_payload_is_refused(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    torch.save({"format": checkpoint.FORMAT, "version": 1, "x": Payload()}, path)
    with pytest.raises(UsageError, match="evil.pt: refused"):
        checkpoint.load(path)


@pytest.mark.parametrize(
    "payload, message",
    [({"w": 1}, "not a checkpoint of resnet train"), ({"format": checkpoint.FORMAT, "version": 99}, "version 99")],
)
def test_other_formats(tmp_path, payload, message):
    torch.save(payload, tmp_path / "x.pt")
    with pytest.raises(UsageError, match=message):
        checkpoint.load(tmp_path / "x.pt")


def test_missing(tmp_path):
    with pytest.raises(UsageError, match="no such checkpoint"):
        checkpoint.load(tmp_path / "nope.pt")
