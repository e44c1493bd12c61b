"""Images are tagged by what goes into them: a change rebuilds, nothing else does; a missing tool says how to fix it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import images
from harness.images import BaseRecipe, ImageError, target_tag
from targets.image import ImageRecipe, files_under


def recipe_of(tmp_path: Path, text: str) -> ImageRecipe:
    f = tmp_path / "pkg" / "mod.py"
    f.parent.mkdir(exist_ok=True)
    f.write_text(text)
    return ImageRecipe(name="t", files=files_under(tmp_path, "pkg"))


def test_target_tag_changes_with_the_source_and_only_with_it(tmp_path):
    a = target_tag(recipe_of(tmp_path, "x = 1\n"))
    assert target_tag(recipe_of(tmp_path, "x = 1\n")) == a
    b = target_tag(recipe_of(tmp_path, "x = 2\n"))
    assert b != a
    assert a.startswith("splitbrain-t:")


def test_build_commands_are_part_of_the_target_tag(tmp_path):
    plain = recipe_of(tmp_path, "x = 1\n")
    built = ImageRecipe(name="t", files=plain.files, run=("python3 -m compileall -q .",))
    assert target_tag(built) != target_tag(plain)


def test_base_tag_depends_on_the_package_set_not_on_its_order():
    assert BaseRecipe(packages=("python3", "iptables")).tag() == BaseRecipe(packages=("iptables", "python3")).tag()
    assert BaseRecipe(packages=("python3",)).tag() != BaseRecipe(packages=("python3", "curl")).tag()


def test_extra_target_packages_change_the_target_tag_not_the_base(tmp_path):
    plain = recipe_of(tmp_path, "x = 1\n")
    extra = ImageRecipe(name="t", files=plain.files, packages=("curl",))
    assert target_tag(extra) != target_tag(plain)
    assert target_tag(ImageRecipe(name="t", files=plain.files, packages=("jq", "curl"))) == \
        target_tag(ImageRecipe(name="t", files=plain.files, packages=("curl", "jq")))
    # The base is one image for every target: the one already built is reused.
    assert BaseRecipe().tag() == "splitbrain-base:21d6f562e112", "a changed base recipe rebuilds every image"


def test_target_packages_are_installed_with_apt_in_the_target_build_step(tmp_path):
    plain = recipe_of(tmp_path, "x = 1\n")
    recipe = ImageRecipe(name="t", files=plain.files, packages=("python3-cryptography", "python3", "curl"),
                         env=(("A", "1"),), run=("true",))
    lines = images.target_dockerfile(recipe, "splitbrain-base:abc").splitlines()
    assert lines[0] == "FROM splitbrain-base:abc"
    assert lines[1] == ("RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y "
                        "--no-install-recommends curl python3-cryptography && rm -rf /var/lib/apt/lists/*"), \
        "packages the base holds (python3) are not installed again"
    # Packages before the files: editing the source reuses Docker's cached package layer.
    assert lines.index("COPY src/ /opt/splitbrain/") > 1 and lines[-2:-1] == ["RUN true"]
    assert not any("apt-get" in line for line in images.target_dockerfile(plain, "b").splitlines())


class FailingBuildClient:
    """A Docker client whose build prints what apt prints for a missing package, then fails."""

    class api:
        @staticmethod
        def build(**kwargs):
            yield {"stream": "Step 2/6 : RUN apt-get update && apt-get install -y nosuchpkg\n"}
            yield {"stream": "Reading package lists...\n"}
            yield {"stream": "E: Unable to locate package nosuchpkg\n"}
            yield {"error": "The command '/bin/sh -c apt-get update' returned a non-zero code: 100"}


def test_a_failed_target_build_says_the_failing_commands_own_output_and_keeps_the_log():
    with pytest.raises(ImageError) as e:
        images.docker_build(FailingBuildClient(), {"Dockerfile": b"FROM x\n"}, "splitbrain-t:abc", lambda s: None)
    msg = str(e.value)
    assert "\n" not in msg
    assert "E: Unable to locate package nosuchpkg" in msg and "non-zero code: 100" in msg
    log = Path(msg.rpartition("full log: ")[2])
    assert "Reading package lists..." in log.read_text()


def test_a_failed_debootstrap_says_its_own_log_and_keeps_it(tmp_path, monkeypatch):
    # A debootstrap that fails the way a bad --include does: its log names the culprit, then the folder is gone.
    fake = tmp_path / "debootstrap"
    fake.write_text('#!/bin/sh\nfor a; do root=$prev; prev=$a; done\nmkdir -p "$root/debootstrap"\n'
                    'echo "dpkg: dependency problems prevent configuration of python3-cryptography" '
                    '> "$root/debootstrap/debootstrap.log"\n'
                    'echo "W: See $root/debootstrap/debootstrap.log for details"\nexit 1\n')
    fake.chmod(0o755)
    monkeypatch.setenv("SPLITBRAIN_NO_REGISTRY", "1")
    monkeypatch.setattr(images.shutil, "which", lambda name: str(fake))
    monkeypatch.setattr(images.os, "geteuid", lambda: 0)
    with pytest.raises(ImageError) as e:
        images.build_base(client=None, base=BaseRecipe(packages=("python3-cryptography",)), progress=lambda s: None)
    msg = str(e.value)
    assert "\n" not in msg and "debootstrap failed (exit 1)" in msg
    assert "dependency problems prevent configuration of python3-cryptography" in msg
    log = Path(msg.rpartition("full log: ")[2])
    assert log.is_file() and "python3-cryptography" in log.read_text()


def test_byte_code_caches_are_not_part_of_the_recipe(tmp_path):
    r = recipe_of(tmp_path, "x = 1\n")
    cache = tmp_path / "pkg" / "__pycache__"
    cache.mkdir()
    (cache / "mod.cpython-311.pyc").write_bytes(b"junk")
    assert files_under(tmp_path, "pkg") == r.files


def test_raftkv_image_holds_its_package_and_nothing_else():
    from targets.registry import get_target

    dests = [d for d, _ in get_target("raftkv").image_recipe().files]
    assert "targets/raftkv/__main__.py" in dests
    assert all(d.startswith("targets/") for d in dests)
    assert not any("tests/" in d or "harness/" in d for d in dests)
    assert "targets/raftkv/plugin.py" not in dests, "the harness-side plugin is not needed in the node"


def test_raftkv_image_leaves_out_the_simulator_the_demo_and_the_loopback_cluster():
    from targets.registry import get_target

    dests = {d for d, _ in get_target("raftkv").image_recipe().files}
    for tool in ("sim.py", "demo.py", "loopback.py"):
        assert f"targets/raftkv/{tool}" not in dests, f"{tool} is a tool, not part of a node"
    # What `python3 -m targets.raftkv` imports is there.
    assert {"targets/raftkv/server.py", "targets/raftkv/node.py", "targets/raftkv/core.py"} <= dests


def test_the_raftkv_node_program_loads_from_the_image_files_alone(tmp_path):
    """Laid out as in the image, with no site-packages (-S): the node's imports are all there, stdlib only."""
    from targets.registry import get_target

    for dest, src in get_target("raftkv").image_recipe().files:
        (tmp_path / dest).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, tmp_path / dest)
    proc = subprocess.run([sys.executable, "-S", "-m", "targets.raftkv", "--help"], cwd=tmp_path,
                          env={"PATH": os.environ.get("PATH", "")}, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "--peers" in proc.stdout


def test_missing_debootstrap_says_how_to_install_it(monkeypatch):
    monkeypatch.setenv("SPLITBRAIN_NO_REGISTRY", "1")
    monkeypatch.setattr(images.shutil, "which", lambda name: None)
    monkeypatch.setattr(images.os.path, "exists", lambda p: False)
    with pytest.raises(ImageError, match="apt-get install debootstrap"):
        images.build_base(client=None, base=BaseRecipe(), progress=lambda s: None)


def test_missing_docker_daemon_is_one_line(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(ImageError) as e:
        images.docker_client()
    assert "\n" not in str(e.value) and "docker" in str(e.value).lower()


@pytest.mark.docker
def test_second_build_is_cached():
    from targets.registry import get_target

    recipe = get_target("raftkv").image_recipe()
    first = images.ensure_image(recipe, progress=lambda s: None)
    lines: list[str] = []
    started = time.monotonic()
    second = images.ensure_image(recipe, progress=lines.append)
    assert second == first
    assert all(line.endswith("cached") for line in lines) and len(lines) == 2
    assert time.monotonic() - started < 3


@pytest.mark.docker
def test_a_target_package_with_a_virtual_dependency_installs_without_rebuilding_the_base(tmp_path):
    """python3-cryptography needs python3-cffi-backend-api-min, a virtual package debootstrap cannot resolve."""
    import docker

    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "probe.py").write_text("import cryptography\nprint(cryptography.__version__)\n")
    recipe = ImageRecipe(name=f"pkgtest-{os.getpid()}", files=files_under(tmp_path, "pkg"),
                         packages=("python3-cryptography",))
    lines: list[str] = []
    tag = images.ensure_image(recipe, progress=lines.append)
    client = docker.from_env()
    try:
        assert f"base image {BaseRecipe().tag()}: cached" in lines
        out = client.containers.run(tag, ["python3", "pkg/probe.py"], remove=True)
        assert out.decode().strip()[:1].isdigit()
    finally:
        client.images.remove(tag, force=True)
