"""Build src/resnet/assets/cifar10-subset.tar.gz, the embedded default data set: the first 500
training and 100 test images (by file name) of each class of the cifar10-jpeg archive, unchanged.

    python scripts/make_embedded_subset.py PATH/TO/cifar10-jpeg.tar.gz
"""

import io
import sys
import tarfile
from pathlib import Path, PurePosixPath

PER_CLASS = {"train": 500, "test": 100}
OUT = Path(__file__).resolve().parent.parent / "src" / "resnet" / "assets" / "cifar10-subset.tar.gz"


def main(source: str) -> None:
    chosen: dict[tuple[str, str], list[tuple[str, bytes]]] = {}
    with tarfile.open(source) as tar:
        for member in tar:
            parts = PurePosixPath(member.name).parts
            if member.isfile() and len(parts) == 4 and parts[1] in PER_CLASS:
                chosen.setdefault((parts[1], parts[2]), []).append((parts[3], tar.extractfile(member).read()))
    with tarfile.open(OUT, "w:gz", compresslevel=9) as out:
        for (split, cls), files in sorted(chosen.items()):
            for name, data in sorted(files)[: PER_CLASS[split]]:
                info = tarfile.TarInfo(f"cifar10-subset/{split}/{cls}/{name}")
                info.size, info.mtime, info.mode = len(data), 0, 0o644
                out.addfile(info, io.BytesIO(data))
    print(f"{OUT}: {OUT.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main(sys.argv[1])
