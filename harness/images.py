"""Container images without a registry: a Debian base image and one image per target, tagged by content hash.

The base image holds Debian packages only (python3, iproute2, iptables, procps,
libfaketime and the tools the nemesis verifies faults with), the same for
every target. Its tag is a hash of its recipe (suite and package list). Where
a registry answers, the base starts from a pulled ``debian:bookworm-slim``
plus ``apt-get install``; on this machine there is none, so it is built with
``debootstrap --variant=minbase`` and ``docker import``, with apt pointed at
the mirror it came from.

A target image is built with a generated Dockerfile ``FROM`` the local base
tag (no pull): first the target's own Debian packages with ``apt-get
install`` (so dependencies and virtual packages resolve, which debootstrap's
``--include`` does not, and the base is not rebuilt), then its source files.
Its tag hashes the base tag, the packages, and the bytes and paths of every
copied file, so editing the target's source rebuilds only the target image
(and Docker's layer cache keeps the packages' layer).

A failed build shows the failing command's own last lines in its one-line
error, and keeps the whole output in a log file the error names.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from targets.image import ImageRecipe

SUITE = "bookworm"
MIRROR = os.environ.get("SPLITBRAIN_DEBIAN_MIRROR", "http://deb.debian.org/debian")
REGISTRY_BASE = "debian:bookworm-slim"
BASE_REPOSITORY = "splitbrain-base"
TARGET_REPOSITORY = "splitbrain"

# Packages every node image has: the target runtime (python3), the fault
# injectors (iproute2 for tc, iptables, procps for kill/ps, libfaketime for
# clocks of other targets) and the probes that verify a fault took effect
# (netcat-openbsd for "can this node still connect to that one").
BASE_PACKAGES: tuple[str, ...] = (
    "python3",
    "iproute2",
    "iptables",
    "procps",
    "libfaketime",
    "faketime",
    "netcat-openbsd",
    "iputils-ping",
    "ca-certificates",
)

LABEL = "splitbrain.image"


class ImageError(Exception):
    """An image cannot be built, for a reason the user can fix: one line, exit 2."""


@dataclass(frozen=True)
class BaseRecipe:
    suite: str = SUITE
    packages: tuple[str, ...] = BASE_PACKAGES

    def tag(self) -> str:
        digest = hashlib.sha256(
            json.dumps({"suite": self.suite, "packages": sorted(set(self.packages)), "v": 1}).encode()
        ).hexdigest()[:12]
        return f"{BASE_REPOSITORY}:{digest}"


def extra_packages(recipe: ImageRecipe) -> tuple[str, ...]:
    """The recipe's packages the base does not already hold, sorted: what the target's build step installs."""
    return tuple(sorted(set(recipe.packages) - set(BASE_PACKAGES)))


def apt_install(packages) -> str:
    """One shell command that installs packages with their dependencies and leaves no package lists behind."""
    return ("apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "
            + " ".join(sorted(set(packages))) + " && rm -rf /var/lib/apt/lists/*")


def target_tag(recipe: ImageRecipe) -> str:
    return f"{TARGET_REPOSITORY}-{recipe.name}:{_digest(BaseRecipe().tag(), recipe)}"


def layer_tag(under: str, recipe: ImageRecipe) -> str:
    """The tag of a fault family's node layer (nemesis.family.NodeLayer.image) built FROM the image `under`."""
    repo, _, _ = under.partition(":")
    return f"{repo}__{recipe.name}:{_digest(under, recipe)}"  # "__": a separator Docker allows, no target has


def _digest(under: str, recipe: ImageRecipe) -> str:
    h = hashlib.sha256()
    h.update(under.encode())
    h.update(json.dumps({"env": recipe.env, "workdir": recipe.workdir, "run": recipe.run,
                         "packages": extra_packages(recipe)}).encode())
    for dest, src in sorted(recipe.files):
        h.update(dest.encode() + b"\0")
        h.update(Path(src).read_bytes())
        h.update(b"\0")
    return h.hexdigest()[:12]


Progress = Callable[[str], None]


def docker_client():
    """A Docker client, or ImageError saying how to get a daemon."""
    import docker

    try:
        client = docker.from_env(timeout=120)
        client.ping()
        return client
    except Exception as e:  # the SDK raises several types for "no daemon"
        raise ImageError(
            f"cannot reach the Docker daemon ({type(e).__name__}); start it (systemctl start docker) "
            "or set DOCKER_HOST"
        ) from None


def image_exists(client, tag: str) -> bool:
    import docker

    try:
        client.images.get(tag)
        return True
    except docker.errors.ImageNotFound:
        return False


def ensure_image(recipe: ImageRecipe, rebuild: bool = False, progress: Progress = print, client=None,
                 rebuild_base: bool | None = None) -> str:
    """The tag of the target's image, building the base and the target image if missing (or if rebuild)."""
    client = client or docker_client()
    base = BaseRecipe()
    base_tag = base.tag()
    tag = target_tag(recipe)
    if rebuild_base is None:
        rebuild_base = rebuild
    if not (rebuild or rebuild_base) and image_exists(client, base_tag) and image_exists(client, tag):
        progress(f"base image {base_tag}: cached")
        progress(f"target image {tag}: cached")
        return tag
    # Two harnesses on one host (parallel CI jobs) would otherwise both run
    # debootstrap for the same tag: the second waits, then finds it built.
    with build_lock(progress):
        if rebuild_base or not image_exists(client, base_tag):
            build_base(client, base, progress)
        else:
            progress(f"base image {base_tag}: cached")
        if rebuild or not image_exists(client, tag):
            build_target(client, recipe, base_tag, tag, progress)
        else:
            progress(f"target image {tag}: cached")
    return tag


def ensure_layer(under: str, recipe: ImageRecipe, rebuild: bool = False, progress: Progress = print,
                 client=None) -> str:
    """The tag of `recipe` built on the image `under` (a target's), building it if missing (or if rebuild).
    Unlike a target image it keeps the image's WORKDIR: its files go to recipe.workdir, and the node's
    command runs where the target's always does."""
    client = client or docker_client()
    tag = layer_tag(under, recipe)
    if not rebuild and image_exists(client, tag):
        progress(f"layer image {tag}: cached")
        return tag
    with build_lock(progress):
        if rebuild or not image_exists(client, tag):
            started = time.monotonic()
            lines = [f"FROM {under}"]
            if extra_packages(recipe):
                lines.append(f"RUN {apt_install(extra_packages(recipe))}")
            lines += [f"ENV {k}={json.dumps(v)}" for k, v in recipe.env]
            lines.append(f"COPY src/ {recipe.workdir}/")
            lines += [f"RUN {cmd}" for cmd in recipe.run]
            context = {"Dockerfile": ("\n".join(lines) + "\n").encode()}
            for dest, src in recipe.files:
                context[f"src/{dest}"] = Path(src).read_bytes()
            progress(f"layer image {tag}: {recipe.name} on {under}")
            docker_build(client, context, tag, progress, labels=None)
            progress(f"layer image {tag}: built in {time.monotonic() - started:.1f}s")
    return tag


@contextlib.contextmanager
def build_lock(progress: Progress):
    path = Path(tempfile.gettempdir()) / "splitbrain-images.lock"
    with open(path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress("another splitbrain is building images; waiting for it")
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def build_base(client, base: BaseRecipe, progress: Progress) -> None:
    tag = base.tag()
    if try_registry_base(client, base, tag, progress):
        return
    debootstrap_base(client, base, tag, progress)


def try_registry_base(client, base: BaseRecipe, tag: str, progress: Progress, timeout: float = 8.0) -> bool:
    """Pull debian:bookworm-slim (quickly) and apt-get the packages into it; False when no registry answers."""
    if os.environ.get("SPLITBRAIN_NO_REGISTRY"):
        return False
    progress(f"base image {tag}: trying a registry pull of {REGISTRY_BASE} ({timeout:.0f}s limit)")
    result: dict = {}

    def pull():
        try:
            import docker

            quick = docker.from_env(timeout=timeout)
            repo, _, t = REGISTRY_BASE.partition(":")
            quick.images.pull(repo, tag=t)
            result["ok"] = True
        except Exception as e:
            result["error"] = f"{type(e).__name__}: {str(e)[:120]}"

    th = threading.Thread(target=pull, daemon=True)
    th.start()
    th.join(timeout + 1)
    if not result.get("ok"):
        progress(f"  no registry ({result.get('error', 'timed out')}); building from Debian packages instead")
        return False
    dockerfile = f"FROM {REGISTRY_BASE}\nRUN {apt_install(base.packages)}\n"
    docker_build(client, {"Dockerfile": dockerfile.encode()}, tag, progress, labels={LABEL: "base"})
    return True


def debootstrap_base(client, base: BaseRecipe, tag: str, progress: Progress) -> None:
    exe = shutil.which("debootstrap") or next(
        (p for p in ("/usr/sbin/debootstrap", "/sbin/debootstrap") if os.path.exists(p)), None
    )
    if not exe:
        raise ImageError("debootstrap is missing; install it with: apt-get install debootstrap (or run scripts/setup)")
    if os.geteuid() != 0:
        raise ImageError("building the base image with debootstrap needs root; run `splitbrain images` as root once")
    workdir = Path(tempfile.mkdtemp(prefix="splitbrain-debootstrap-"))
    root = workdir / "rootfs"
    started = time.monotonic()
    try:
        cmd = [
            exe,
            "--variant=minbase",
            f"--include={','.join(sorted(set(base.packages)))}",
            base.suite,
            str(root),
            MIRROR,
        ]
        progress(f"base image {tag}: debootstrap {base.suite} from {MIRROR} (a few minutes)")
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        output: list[str] = []
        seen_stages: set[str] = set()
        last_shown = time.monotonic()
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            output.append(line)
            # debootstrap prints one "I: <verb> <package>" line per package;
            # show the first line of every stage (Retrieving, Extracting,
            # Installing, Configuring...), warnings and errors, and otherwise a
            # heartbeat every 10 s, so a user sees it move without a flood.
            stage = line[3:].split(" ")[0] if line.startswith("I: ") else ""
            now = time.monotonic()
            if line.startswith(("W: ", "E: ")) or (stage and stage not in seen_stages) or now - last_shown > 10:
                progress(f"  [{now - started:5.0f}s] {line}")
                last_shown = now
                seen_stages.add(stage)
        if proc.wait() != 0:
            # debootstrap's own lines end with "See <root>/debootstrap/debootstrap.log",
            # a folder removed below: keep that log, and say its last lines.
            own = root / "debootstrap" / "debootstrap.log"
            own_lines = own.read_text(errors="replace").splitlines() if own.is_file() else []
            log = keep_log(f"debootstrap-{tag.partition(':')[2]}", output + ["", f"--- {own} ---"] + own_lines)
            raise ImageError(f"debootstrap failed (exit {proc.returncode}): {last_lines(own_lines or output)}; "
                             f"full log: {log}")
        # apt in a target's build step installs from the mirror the base came from.
        (root / "etc" / "apt" / "sources.list").write_text(f"deb {MIRROR} {base.suite} main\n")
        # Trim what a node never needs: downloaded packages.
        for p in (root / "var/cache/apt/archives").glob("*.deb"):
            p.unlink()
        tarball = workdir / "rootfs.tar"
        progress(f"  [{time.monotonic() - started:5.0f}s] packing the root filesystem")
        subprocess.run(
            ["tar", "--numeric-owner", "--exclude=./dev/*", "--exclude=./proc/*", "--exclude=./sys/*",
             "-C", str(root), "-cf", str(tarball), "."],
            check=True,
        )
        progress(f"  [{time.monotonic() - started:5.0f}s] docker import as {tag}")
        repo, _, t = tag.partition(":")
        client.api.import_image_from_file(
            str(tarball),
            repository=repo,
            tag=t,
            changes=[
                "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "ENV LANG=C.UTF-8",
                f"LABEL {LABEL}=base",
                'CMD ["/bin/bash"]',
            ],
        )
        if not image_exists(client, tag):
            raise ImageError(f"docker import did not produce {tag}")
        progress(f"base image {tag}: built in {time.monotonic() - started:.0f}s")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def target_dockerfile(recipe: ImageRecipe, base_tag: str) -> str:
    """The target image's Dockerfile: packages first (a layer Docker keeps while only the files change)."""
    lines = [f"FROM {base_tag}"]
    if extra_packages(recipe):
        lines.append(f"RUN {apt_install(extra_packages(recipe))}")
    for k, v in recipe.env:
        lines.append(f"ENV {k}={json.dumps(v)}")
    lines.append(f"COPY src/ {recipe.workdir}/")
    lines.append(f"WORKDIR {recipe.workdir}")
    lines += [f"RUN {cmd}" for cmd in recipe.run]
    lines.append(f'LABEL {LABEL}="{recipe.name}"')
    return "\n".join(lines) + "\n"


def build_target(client, recipe: ImageRecipe, base_tag: str, tag: str, progress: Progress) -> None:
    started = time.monotonic()
    packages = extra_packages(recipe)
    progress(f"target image {tag}: {len(recipe.files)} files"
             + (f" and {len(packages)} packages ({', '.join(packages)})" if packages else "") + f" on {base_tag}")
    context = {"Dockerfile": target_dockerfile(recipe, base_tag).encode()}
    for dest, src in recipe.files:
        context[f"src/{dest}"] = Path(src).read_bytes()
    docker_build(client, context, tag, progress, labels=None)
    progress(f"target image {tag}: built in {time.monotonic() - started:.1f}s")


def docker_build(client, files: dict[str, bytes], tag: str, progress: Progress, labels=None) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    output: list[str] = []  # what the build's commands printed, for the error when one fails
    try:
        stream = client.api.build(
            fileobj=buf, custom_context=True, tag=tag, rm=True, forcerm=True, pull=False, decode=True,
            labels=labels,
        )
        for chunk in stream:
            if "error" in chunk:
                error = chunk["error"].strip()
                log = keep_log(f"build-{tag.replace(':', '-').replace('/', '-')}", output + [error])
                raise ImageError(f"building {tag} failed: {error}; last lines: {last_lines(output)}; "
                                 f"full log: {log}")
            text = chunk.get("stream", "")
            output += [line.rstrip() for line in text.splitlines() if line.strip()]
            if text.strip().startswith("Step "):
                progress(f"  {text.strip()}")
    except ImageError:
        raise
    except Exception as e:
        raise ImageError(f"building {tag} failed: {e}") from None


def last_lines(lines: list[str], n: int = 5) -> str:
    """The last n non-empty lines joined on one line (an ImageError is one line)."""
    return " | ".join([line.strip() for line in lines if line.strip()][-n:]) or "(no output)"


def keep_log(name: str, lines: list[str]) -> Path:
    """Write a failed build's whole output where it outlives the build's temporary folder; its path."""
    path = Path(tempfile.gettempdir()) / "splitbrain-images" / f"{name}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path
