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


def test_extra_target_packages_go_into_the_base(tmp_path):
    plain = recipe_of(tmp_path, "x = 1\n")
    extra = ImageRecipe(name="t", files=plain.files, packages=("curl",))
    assert images.base_recipe_for(extra).tag() != images.base_recipe_for(plain).tag()
    assert target_tag(extra) != target_tag(plain)


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
