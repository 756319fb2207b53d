import numpy as np
import pytest
from PIL import Image

from resnet import UsageError
from resnet.data.images import decode_image


def _save(image: Image.Image, path, **kw):
    image.save(path, **kw)
    return path


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "CMYK", "LA", "1"])
def test_modes_become_rgb(tmp_path, mode):
    image = Image.new("RGB", (10, 8), (200, 100, 50)).convert(mode)
    path = _save(image, tmp_path / ("x.tif" if mode == "CMYK" else "x.png"))
    out = decode_image(path)
    assert out.mode == "RGB" and out.size == (10, 8)


def test_16_bit_grayscale_keeps_the_top_8_bits(tmp_path):
    pixels = np.full((4, 4), 0x8000, dtype=np.uint16)
    path = _save(Image.fromarray(pixels), tmp_path / "x.png")
    assert np.asarray(decode_image(path))[0, 0].tolist() == [128, 128, 128]


def test_truncated_jpeg_is_named(tmp_path):
    path = _save(Image.new("RGB", (64, 64), "red"), tmp_path / "cut.jpg")
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(UsageError, match="cut.jpg: unreadable image"):
        decode_image(path)


@pytest.mark.parametrize("content, message", [(b"", "not an image"), (b"hello, world", "not an image")])
def test_non_images_are_named(tmp_path, content, message):
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(UsageError, match=f"bad.jpg: {message}"):
        decode_image(path)


def test_decompression_bomb_is_refused(tmp_path, monkeypatch):
    path = _save(Image.new("RGB", (100, 100)), tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5000)  # 10,000 pixels: over the limit, under twice
    with pytest.raises(UsageError, match="bomb.png: refused"):
        decode_image(path)


def test_bytes_are_decoded_with_the_given_name(tmp_path):
    data = _save(Image.new("RGB", (3, 3)), tmp_path / "x.png").read_bytes()
    assert decode_image(data, "member/x.png").size == (3, 3)
    with pytest.raises(UsageError, match="member/y.png"):
        decode_image(b"junk", "member/y.png")
