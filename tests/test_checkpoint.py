import shutil
from pathlib import Path

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


def _flip_a_byte_of(tensor: torch.Tensor, path):
    """`path` with one byte of `tensor`'s data changed: damage a zip archive does not reveal."""
    data = bytearray(path.read_bytes())
    at = data.find(tensor.numpy().tobytes())
    assert at > 0
    data[at + 5] ^= 0x01
    path.write_bytes(data)


V2 = Path(__file__).parent / "fixtures" / "checkpoint-v2.pt"  # written by the release before version 3


@pytest.mark.parametrize("version", [2, 3], ids=["BLAKE2 (version 2)", "CRC-32 (version 3)"])
def test_damaged_tensor_data_is_detected_in_each_version_read(tmp_path, version):
    path, w = tmp_path / "last.pt", torch.arange(1024, dtype=torch.float32)
    if version == checkpoint.VERSION:
        checkpoint.save({"step": 3, "w": w}, path)
    else:
        shutil.copyfile(V2, path)
    state = checkpoint.load(path)
    assert (state["version"], state["step"]) == (version, 3) and torch.equal(state["w"], w)
    _flip_a_byte_of(w, path)
    with pytest.raises(UsageError, match="last.pt: damaged checkpoint"):
        checkpoint.load(path)


def test_saving_leaves_torchs_zip_crc32_setting_as_it_was(tmp_path):
    options = getattr(torch.serialization, "get_crc32_options", None)
    if options is None:
        pytest.skip("torch<2.6 always writes the zip's CRC-32")
    assert options() is True  # torch's default
    checkpoint.save({"w": torch.ones(3)}, tmp_path / "last.pt")
    assert options() is True


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


@pytest.mark.parametrize("links", [True, False], ids=["hard link", "copy"])
def test_duplicate_is_a_second_name_that_later_saves_leave_alone(tmp_path, monkeypatch, links):
    if not links:  # a file system without hard links: the checkpoint is copied
        monkeypatch.setattr(checkpoint.os, "link", lambda *a: (_ for _ in ()).throw(OSError(1, "not permitted")))
    last, best = tmp_path / "last.pt", tmp_path / "best.pt"
    checkpoint.save({"step": 1}, best)
    checkpoint.save({"step": 2, "w": torch.arange(3.0)}, last)
    checkpoint.duplicate(last, best)
    assert checkpoint.load(best)["step"] == 2 and torch.equal(checkpoint.load(best)["w"], torch.arange(3.0))
    assert (best.stat().st_ino == last.stat().st_ino) is links
    checkpoint.save({"step": 3}, last)  # the next evaluation's last.pt, not an improvement
    assert checkpoint.load(best)["step"] == 2 and checkpoint.load(last)["step"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last.pt"]  # no temporary file left
