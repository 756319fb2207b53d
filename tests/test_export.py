import json
import shutil

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

import resnet
from resnet import UsageError, create_model
from resnet.cli import main
from resnet.export import export_model
from resnet.models.weights import read_weights


@pytest.fixture(scope="module")
def trained(trained_run):
    """The shared run's best checkpoint and its classifier, and a batch of 4 (other than the export's)."""
    classifier = resnet.load(trained_run / "best.pt")
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(7)) * 4 - 2
    with torch.no_grad():
        return trained_run / "best.pt", classifier, x, classifier.model(x)


def test_onnx_runs_in_onnxruntime_with_any_batch_and_carries_metadata(trained, tmp_path):
    checkpoint, classifier, x, logits = trained
    result = export_model(checkpoint, "onnx", tmp_path / "m.onnx")
    assert result.path == tmp_path / "m.onnx" and result.max_abs_diff < 1e-4
    session = onnxruntime.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"input": x.numpy()})[0], logits.numpy(), atol=1e-4)
    proto = onnx.load(str(result.path))
    assert proto.opset_import[0].version >= 17
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["classes"]) == classifier.classes == ["blue", "green", "red"]
    assert json.loads(meta["normalize"])["std"] == classifier.normalize.std.tolist()
    assert json.loads(meta["image_size"]) == 32 and json.loads(meta["model_name"]) == "resnet20"


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_torchscript_runs_without_the_package(trained, tmp_path):
    checkpoint, classifier, x, logits = trained
    result = export_model(checkpoint, "torchscript", tmp_path / "m.pt")
    extra = {"resnet.json": ""}
    scripted = torch.jit.load(str(result.path), _extra_files=extra)
    torch.testing.assert_close(scripted(x), logits, atol=1e-4, rtol=0)
    assert json.loads(json.loads(extra["resnet.json"])["classes"]) == classifier.classes


def test_safetensors_reloads_through_create_model(trained, tmp_path):
    checkpoint, classifier, x, logits = trained
    result = export_model(checkpoint, "safetensors", tmp_path / "m.safetensors")
    assert result.max_abs_diff == 0
    model = create_model("resnet20", weights=result.path).eval()
    with torch.no_grad():
        assert torch.equal(model(x), logits)
    meta = read_weights(result.path).meta
    assert meta["classes"] == classifier.classes and meta["image_size"] == 32
    assert meta["normalize"]["mean"] == classifier.normalize.mean.tolist()


def test_openvino_ir_runs_in_openvino_and_carries_metadata(trained, tmp_path):
    ov = pytest.importorskip("openvino")
    checkpoint, classifier, x, logits = trained
    result = export_model(checkpoint, "openvino", tmp_path / "m.xml")
    assert result.path == tmp_path / "m.xml" and result.max_abs_diff < 1e-4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.bin", "m.xml"]  # no temporary file left
    graph = ov.Core().read_model(str(result.path))
    assert json.loads(graph.get_rt_info(["resnet", "classes"]).astype(str)) == classifier.classes
    assert json.loads(graph.get_rt_info(["resnet", "model_name"]).astype(str)) == "resnet20"
    compiled = ov.Core().compile_model(graph, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    for batch in (x, x[:1]):  # the batch axis is dynamic
        np.testing.assert_allclose(compiled(batch.numpy())[0], logits[: len(batch)].numpy(), atol=1e-4)


def test_failed_openvino_verification_leaves_both_earlier_files(trained, tmp_path):
    pytest.importorskip("openvino")
    (tmp_path / "m.xml").write_text("earlier graph")
    (tmp_path / "m.bin").write_bytes(b"earlier weights")
    with pytest.raises(UsageError, match="openvino export's logits differ"):
        export_model(trained[0], "openvino", tmp_path / "m.xml", tolerance=1e-12)
    assert (tmp_path / "m.xml").read_text() == "earlier graph"
    assert (tmp_path / "m.bin").read_bytes() == b"earlier weights"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.bin", "m.xml"]


def test_default_path_is_beside_the_checkpoint(trained, tmp_path):
    shutil.copy(trained[0], tmp_path / "best.pt")
    assert export_model(tmp_path / "best.pt", "safetensors").path == tmp_path / "best.safetensors"


def test_failed_verification_writes_nothing(trained, tmp_path):
    # onnxruntime's kernels round otherwise than PyTorch's: no export matches to 1e-12
    out = tmp_path / "m.onnx"
    out.write_bytes(b"an earlier export")
    with pytest.raises(UsageError, match=r"onnx export's logits differ from the model's by .* nothing was written"):
        export_model(trained[0], "onnx", out, tolerance=1e-12)
    assert out.read_bytes() == b"an earlier export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_bad_requests(trained, tmp_path):
    with pytest.raises(UsageError, match="unknown export format 'tflite'"):
        export_model(trained[0], "tflite")
    with pytest.raises(UsageError, match="at least 2 images"):
        export_model(trained[0], "onnx", tmp_path / "m.onnx", batch_size=1)
    with pytest.raises(UsageError, match="no such folder"):
        export_model(trained[0], "onnx", tmp_path / "nowhere" / "m.onnx")


def test_cli(trained, tmp_path, capsys):
    assert main(["export", str(trained[0]), "--format", "torchscript", "--out", str(tmp_path / "m.pt")]) == 0
    out = capsys.readouterr().out
    assert f"wrote {tmp_path / 'm.pt'} (torchscript)" in out and "random batches of 2 and 3" in out
    assert main(["export", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing.pt: no such checkpoint" in err
    with pytest.raises(SystemExit) as e:
        main(["export", str(trained[0]), "--format", "tflite"])
    assert e.value.code == 2


def test_cli_exports_the_shipped_weights_by_name_into_the_current_folder(tmp_path, monkeypatch, capsys):
    from resnet.models.weights import SHIPPED_DIR

    shipped = sorted(SHIPPED_DIR.iterdir())
    monkeypatch.chdir(tmp_path)
    assert main(["export", "--model", "resnet20", "--weights", "cifar10"]) == 0
    assert "wrote resnet20-cifar10.onnx (onnx)" in capsys.readouterr().out
    assert sorted(SHIPPED_DIR.iterdir()) == shipped  # nothing written into the package
    session = onnxruntime.InferenceSession("resnet20-cifar10.onnx", providers=["CPUExecutionProvider"])
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = create_model("resnet20", weights="cifar10").eval()(x)
    np.testing.assert_allclose(session.run(None, {"input": x.numpy()})[0], expected.numpy(), atol=1e-4)
    classes = json.loads({p.key: p.value for p in onnx.load("resnet20-cifar10.onnx").metadata_props}["classes"])
    assert classes[:2] == ["airplane", "automobile"] and len(classes) == 10
    assert main(["export"]) == 2 and "name a checkpoint to export" in capsys.readouterr().err
    assert main(["export", "--weights", "cifar10"]) == 2 and "name the network with --model" in capsys.readouterr().err


def test_a_network_on_feature_vectors_exports(tmp_path):
    csv = tmp_path / "five.csv"
    rows = [f"{i % 7},{i % 3},{i % 5},{i % 2},{i % 11},{i % 2}" for i in range(40)]
    csv.write_text("\n".join(rows) + "\n")
    overrides = {"batch_size": 8, "log.evals": 1, "model_options": {"blocks": 1}}
    resnet.train("residual_mlp", str(csv), "mlp", tmp_path / "run", overrides, iters=2, progress=False)
    classifier = resnet.load(tmp_path / "run" / "last.pt")
    assert classifier.model_options["in_features"] == 5  # as built from the data, not the default 64
    result = export_model(tmp_path / "run" / "last.pt", "onnx", tmp_path / "mlp.onnx")
    assert result.max_abs_diff < 1e-4
