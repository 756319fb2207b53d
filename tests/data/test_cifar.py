import hashlib
import http.server
import pickle
import tarfile
import threading
from functools import partial

import numpy as np
import pytest
from datasets import make_cifar_archive

from resnet import UsageError
from resnet.data import cifar


@pytest.mark.parametrize("kind, classes", [("cifar10", 10), ("cifar100", 100)])
def test_archive_and_extracted_folder(tmp_path, kind, classes):
    archive = make_cifar_archive(tmp_path / f"{kind}.tar.gz", kind, per_batch=12)
    arrays = cifar.load(archive)
    assert arrays["train_images"].shape == (60, 3, 32, 32) and arrays["train_images"].dtype == np.uint8
    assert arrays["test_labels"].shape == (12,) and len(arrays["classes"]) == classes
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "x", filter="data")
    folder = next((tmp_path / "x").iterdir())
    extracted = cifar.load(folder)
    assert np.array_equal(extracted["train_images"], arrays["train_images"])


def test_pixel_layout_is_channel_planes(tmp_path):
    archive = make_cifar_archive(tmp_path / "c.tar.gz", per_batch=2)
    with tarfile.open(archive) as tar:
        raw = pickle.load(tar.extractfile("cifar-10-batches-py/data_batch_1"), encoding="latin1")["data"]
    # each row: 1024 red, then 1024 green, then 1024 blue values, row-major
    assert np.array_equal(cifar.load(archive)["train_images"][0, 1, 0, :], raw[0, 1024:1056])


def test_not_a_cifar_archive(tmp_path):
    with pytest.raises(UsageError, match="not a CIFAR"):
        cifar.load(tmp_path)


def test_code_in_a_batch_is_refused(tmp_path):
    archive = make_cifar_archive(tmp_path / "c.tar.gz", per_batch=2)
    folder = tmp_path / "x"
    with tarfile.open(archive) as tar:
        tar.extractall(folder, filter="data")

    class Payload:
        def __reduce__(self):
            return (print, ("pwned",))

    (folder / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps(Payload()))
    with pytest.raises(UsageError, match="refusing to load builtins.print"):
        cifar.load(folder)


@pytest.fixture
def server(tmp_path):
    """A local HTTP server of tmp_path/www: the download code runs against it."""
    root = tmp_path / "www"
    root.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_download_verifies_the_checksum(server, tmp_path):
    root, url = server
    archive = make_cifar_archive(root / "cifar-10-python.tar.gz", per_batch=3)
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    path = cifar.download("cifar10", tmp_path / "data", url=f"{url}/cifar-10-python.tar.gz", md5=md5)
    assert path.read_bytes() == archive.read_bytes()
    assert cifar.load(path)["train_images"].shape[0] == 15
    # a verified copy is not fetched again
    archive.unlink()
    assert cifar.download("cifar10", tmp_path / "data", url=f"{url}/cifar-10-python.tar.gz", md5=md5) == path


def test_download_with_a_bad_checksum_keeps_nothing(server, tmp_path):
    root, url = server
    make_cifar_archive(root / "cifar-10-python.tar.gz", per_batch=3)
    with pytest.raises(UsageError, match="checksum mismatch"):
        cifar.download("cifar10", tmp_path / "data", url=f"{url}/cifar-10-python.tar.gz", md5="0" * 32)
    assert not any((tmp_path / "data").iterdir())


def test_download_failure_is_reported(server, tmp_path):
    _, url = server
    with pytest.raises(UsageError, match="download failed"):
        cifar.download("cifar10", tmp_path / "data", url=f"{url}/missing.tar.gz", md5="0" * 32)
