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


# Property-based: any bytes decode to an RGB image or a UsageError naming them; any real image round-trips.

import io  # noqa: E402

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes(data):
    try:
        image = decode_image(data, "blob.bin")
    except UsageError as e:
        assert str(e).startswith("blob.bin: ")
        return
    assert image.mode == "RGB"


@settings(max_examples=60, deadline=None)
@given(
    mode=st.sampled_from(["RGB", "L", "P", "RGBA", "LA", "CMYK", "1", "I;16"]),
    fmt=st.sampled_from(["PNG", "JPEG", "BMP", "TIFF", "WEBP", "GIF"]),
    width=st.integers(1, 50),
    height=st.integers(1, 50),
    seed=st.integers(0, 2**16),
)
def test_real_images_of_any_mode_and_format(mode, fmt, width, height, seed):
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    image = (
        Image.fromarray(pixels).convert(mode)
        if mode != "I;16"
        else Image.fromarray(pixels[..., 0].astype(np.uint16) * 257)
    )
    buffer = io.BytesIO()
    try:
        image.save(buffer, fmt)
    except (OSError, ValueError, KeyError):
        return  # this format cannot hold this mode
    out = decode_image(buffer.getvalue(), f"x.{fmt.lower()}")
    assert out.mode == "RGB" and out.size == (width, height)
    if mode == "RGB" and fmt in ("PNG", "BMP", "TIFF"):  # lossless
        assert np.array_equal(np.asarray(out), pixels)
