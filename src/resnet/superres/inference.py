"""Upscaling images with a trained super-resolution checkpoint (`resnet superres apply`)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from .. import checkpoint
from ..data.images import decode_image
from ..errors import UsageError
from ..models import create_model
from ..train.runtime import setup
from .data import to_image, to_tensor, upscale_bicubic
from .metrics import SSIM_WINDOW, psnr, ssim


def load(path: str | Path, device: str = "auto") -> nn.Module:
    """The network of a `resnet superres train` checkpoint, in eval mode on `device` (auto: a GPU if
    there is one, else the CPU); `model.scale` is its factor."""
    device = setup(str(device)).device
    state = checkpoint.load(path)
    if state.get("task") != "superres":
        raise UsageError(f"{path}: not a super-resolution checkpoint (made by resnet superres train)")
    model = create_model(state["model_name"], **state["model_options"])
    model.load_state_dict(state["model"])
    return model.to(device).eval()


@torch.no_grad()
def upscale(model: nn.Module, lr: np.ndarray) -> np.ndarray:
    """The low-resolution image `lr` (HWC uint8) upscaled ×model.scale by `model`, as HWC uint8."""
    device = next(model.parameters()).device
    x = upscale_bicubic(lr, model.scale) if model.input_is_upscaled else lr
    return to_image(model.eval()(to_tensor([x]).to(device))[0])


def apply(
    path: str | Path,
    images: list[str | Path],
    out: str | Path,
    references: list[str | Path] | None = None,
    device: str = "auto",
) -> list[dict]:
    """Upscale each of `images` with checkpoint `path`, writing `out`/<name>_x<scale>.png.

    With `references` (the high-resolution images, one per input, in order), each result also holds
    the PSNR and SSIM (Y channel, `scale` border pixels cropped) of the network and of bicubic
    upscaling against its reference. Returns one dict per image: image, output and the metrics.
    Every input is read and checked before anything is written.
    """
    model = load(path, device)
    scale, out = model.scale, Path(out)
    if references is not None and len(references) != len(images):
        raise UsageError(f"{len(images)} images but {len(references)} --reference images; give one per image")
    outputs = [out / f"{Path(name).stem}_x{scale}.png" for name in images]
    if len(set(outputs)) < len(outputs):
        raise UsageError("two images share a file name; their outputs would overwrite each other")
    lrs = [np.asarray(decode_image(name)) for name in images]
    hrs = [_reference(ref, lr, scale) for ref, lr in zip(references, lrs)] if references is not None else []
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"{out}: cannot create the output folder ({e.strerror or e})") from None
    results = []
    for i, (name, lr, target) in enumerate(zip(images, lrs, outputs)):
        sr = upscale(model, lr)
        _write(sr, target)
        row = {"image": str(name), "output": str(target)}
        if hrs:
            hr = to_tensor([hrs[i]])
            for label, image in (("", sr), ("bicubic_", upscale_bicubic(lr, scale))):
                row[f"{label}psnr"] = psnr(to_tensor([image]), hr, scale).item()
                row[f"{label}ssim"] = ssim(to_tensor([image]), hr, scale).item()
        results.append(row)
    return results


def _reference(path: str | Path, lr: np.ndarray, scale: int) -> np.ndarray:
    """The HR reference of `lr`: scale × its size, allowing (and cropping) the scale-1 extra pixels that
    a customary modcrop removes."""
    hr = np.asarray(decode_image(path))
    h, w = lr.shape[0] * scale, lr.shape[1] * scale
    if not (h <= hr.shape[0] < h + scale and w <= hr.shape[1] < w + scale):
        raise UsageError(f"{path} is {hr.shape[1]}×{hr.shape[0]}, not ×{scale} its image ({w}×{h} expected)")
    if min(h, w) < SSIM_WINDOW + 2 * scale:
        raise UsageError(f"{path} is too small to measure: under {SSIM_WINDOW + 2 * scale} pixels on a side")
    return hr[:h, :w]


def _write(image: np.ndarray, path: Path) -> None:
    """Write a PNG atomically: a temporary file beside it, then renamed."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        Image.fromarray(image).save(tmp, format="PNG")
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise UsageError(f"{path}: cannot write ({e.strerror or e})") from None
