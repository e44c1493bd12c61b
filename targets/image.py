"""What a target's node image holds (`ImageRecipe`): part of the target contract.

The harness (harness/images.py) turns a recipe into a Docker image; a target
only describes it, so a target imports nothing of the harness.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ImageRecipe:
    """What a target's image holds on top of the base.

    ``files`` maps a path in the image (relative to ``/opt/splitbrain``) to a
    file on this machine; ``packages`` are extra Debian packages the target
    needs (installed with apt in the target image's own build step, so their
    dependencies and virtual packages resolve; hashed into the target tag);
    ``run`` are shell commands run last (hashed into the target tag).
    """

    name: str
    files: tuple[tuple[str, Path], ...]
    packages: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    workdir: str = "/opt/splitbrain"
    run: tuple[str, ...] = ()  # shell commands run in the image after the files are copied (RUN lines)


def files_under(root: Path, package_dir: str, exclude: tuple[str, ...] = ("__pycache__",)) -> tuple[tuple[str, Path], ...]:
    """Every source file under ``root/package_dir`` as (image path, host path), sorted, caches skipped."""
    base = root / package_dir
    out = []
    for path in sorted(base.rglob("*")):
        if not path.is_file() or any(part in exclude for part in path.parts) or path.suffix == ".pyc":
            continue
        out.append((str(path.relative_to(root)), path))
    return tuple(out)


