"""Super-resolution by residual learning: VDSR (Kim et al. 2016) and the EDSR baseline (Lim et al.
2017) in the model registry, training on any folder of images, PSNR and SSIM, and upscaling.

    import resnet.superres as sr
    result = sr.train("vdsr", data="photos/", scale=2, out="runs/vdsr", iters=2000)
    sr.apply("runs/vdsr/best.pt", ["small.png"], out="upscaled/")

The networks are in the model registry (`resnet.models.superres`); training code loads only when
`train`, `apply`, `load`, `upscale` or `compare_runs` is first used.
"""

from importlib import import_module

from .metrics import psnr, ssim

_LAZY = {
    "train": ".trainer",
    "SuperResConfig": ".trainer",
    "SuperResResult": ".trainer",
    "apply": ".inference",
    "load": ".inference",
    "upscale": ".inference",
    "compare_runs": ".plots",
}

__all__ = ["psnr", "ssim", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        value = globals()[name] = getattr(import_module(_LAZY[name], __name__), name)
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
