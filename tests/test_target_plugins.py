"""A user's own target runs without touching splitbrain: `splitbrain new-target` writes it, it is installed as its own
package (entry point `splitbrain.targets`) or named as `package.module:Class`, and the harness runs it.

The fast tests install the generated package the way an installer lays one out (its files plus a dist-info
with the entry points its pyproject.toml declares) into a temporary directory on sys.path, and run it on
loopback: each node's command, as the target gives it, runs here as a process with its own 127.x address.
The docker test runs the same package in containers built from the local base image.
"""

from __future__ import annotations

import asyncio
import importlib
import io
import random
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from harness.cli import build_parser, main
from harness.commands.new_target import write_target
from harness.commands.run import _TargetClient, execute, resolve_spec
from targets.base import ClusterLayout, NodeAddress, TargetOptions
from targets.registry import TARGETS, PluginError, get_target, target_names

NAME = "mykv"


def install(package: Path, site: Path) -> None:
    """Lay the package out as pip would in site: its modules and a dist-info with its entry points."""
    project = tomllib.loads((package / "pyproject.toml").read_text())["project"]
    shutil.copytree(package / NAME, site / NAME)
    info = site / f"{project['name']}-{project['version']}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    lines = []
    for group, eps in project["entry-points"].items():
        lines += [f"[{group}]", *(f"{k} = {v}" for k, v in eps.items()), ""]
    (info / "entry_points.txt").write_text("\n".join(lines))


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("new-target")
    write_target(NAME, root / NAME)
    return root / NAME


@pytest.fixture
def on_path():
    """Put directories on sys.path for one test; forget what was imported from them afterwards."""
    added: list[str] = []

    def add(path: Path) -> None:
        sys.path.insert(0, str(path))
        added.append(str(path))
        importlib.invalidate_caches()

    yield add
    for p in added:
        sys.path.remove(p)
    for mod in [m for m in sys.modules if m.partition(".")[0] in (NAME, "brokenkv")]:
        del sys.modules[mod]
    TARGETS._loaded.clear()  # what was imported from those directories is gone with them
    importlib.invalidate_caches()


@pytest.fixture
def installed(generated, tmp_path, on_path) -> Path:
    site = tmp_path / "site"
    install(generated, site)
    on_path(site)
    return site


class LoopbackCluster:
    """The run loop's cluster, as processes here: each node's command from the target, on its own 127.x address.

    The image is a folder: the recipe's files under it, and /opt/splitbrain in argv points there.
    """

    def __init__(self, target, nodes: int, root: Path):
        self.target, self.root = target, root
        a, b = random.randrange(1, 255), random.randrange(1, 255)  # a loopback /24 of our own
        self.ips = {f"n{i}": f"127.{a}.{b}.{10 + i}" for i in range(1, nodes + 1)}
        self.addresses = {n: f"{ip}:{target.client_port}" for n, ip in self.ips.items()}
        self.procs: dict[str, subprocess.Popen] = {}

    def up(self) -> dict[str, str]:
        recipe = self.target.image_recipe()
        image = self.root / "image"
        for dest, src in recipe.files:
            (image / dest).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, image / dest)
        layout = ClusterLayout(nodes=tuple(NodeAddress(n, ip) for n, ip in self.ips.items()),
                               peer_port=self.target.peer_port, client_port=self.target.client_port)
        for n in self.ips:
            own = self.root / n  # each container has its own filesystem: here, its own folder
            node_layout = ClusterLayout(layout.nodes, layout.peer_port, layout.client_port,
                                        data_dir=str(own / "data"), cluster_key_file=str(own / "cluster.key"),
                                        clock_file=str(own / "clock.json"), faketime_file=str(own / "faketime.rc"))
            (own / "data").mkdir(parents=True)
            argv = [sys.executable if a == "python3" else a.replace(recipe.workdir, str(image))
                    for a in self.target.node_command(n, node_layout, TargetOptions(client_timeout=1.0))]
            env = self.target.node_environment(n, node_layout, TargetOptions())
            self.procs[n] = subprocess.Popen(argv, cwd=image, env={**env, "PATH": "/usr/bin:/bin"},
                                             stdout=(own / "log").open("w"), stderr=subprocess.STDOUT)

        async def serving():
            for _ in range(100):
                answers = await asyncio.gather(*(self.target.status_probe(a, 0.2) for a in self.addresses.values()))
                if all(answers):
                    return
                await asyncio.sleep(0.05)
            raise RuntimeError("loopback nodes did not answer their status probe")

        asyncio.run(serving())
        return dict(self.ips)

    def copy_logs(self, dest: Path) -> None:
        for n in self.ips:
            shutil.copy(self.root / n / "log", Path(dest) / f"{n}.log")

    def teardown(self) -> None:
        for p in self.procs.values():
            p.kill()
            p.wait()


def loopback_parts(root: Path):
    def parts(spec, target, log):
        cluster = LoopbackCluster(target, spec.nodes, root)
        return cluster, list(cluster.ips), (lambda ips: _TargetClient(target, cluster.addresses, spec.op_timeout)), None
    return parts


def run_args(target: str, tmp_path: Path, *more: str):
    return build_parser().parse_args(["run", "--target", target, "--nodes", "3", "--workload", "register",
                                      "--time-limit", "1.5", "--warmup", "0.2", "--rate", "100", "--concurrency", "4",
                                      "--seed", "3", "--store", str(tmp_path / "store"), *more])


# ---- new-target -----------------------------------------------------------


def test_new_target_writes_a_package_that_lints_clean(generated):
    files = sorted(str(p.relative_to(generated)) for p in generated.rglob("*") if p.is_file())
    assert files == ["README.md", "mykv/__init__.py", "mykv/node.py", "mykv/plugin.py", "pyproject.toml",
                     "tests/test_smoke.py"]
    project = tomllib.loads((generated / "pyproject.toml").read_text())["project"]
    assert project["entry-points"]["splitbrain.targets"] == {"mykv": "mykv.plugin:Mykv"}
    lint = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", str(generated)],
                          capture_output=True, text=True, cwd=generated)
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_new_target_refuses_a_bad_name_or_an_existing_folder_in_one_line(tmp_path, capsys):
    assert main(["new-target", "My-KV", str(tmp_path / "a")]) == 2
    assert main(["new-target", "targets", str(tmp_path / "b")]) == 2
    (tmp_path / "c").mkdir()
    assert main(["new-target", "okname", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 3 and "'My-KV'" in err and "taken" in err and "exists" in err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


# ---- an installed package -------------------------------------------------


def test_an_installed_target_is_found_by_its_entry_point_and_listed(installed, capsys):
    assert NAME in target_names() and "raftkv" in target_names()
    target = get_target(NAME)
    assert type(target).__module__ == "mykv.plugin" and target.name == NAME
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    assert "mykv" in " ".join(capsys.readouterr().out.split())


def test_the_generated_smoke_test_passes_against_the_installed_package(generated, installed):
    env = {"PYTHONPATH": f"{installed}:{Path(__file__).resolve().parents[1]}", "PATH": "/usr/bin:/bin"}
    smoke = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
                           cwd=generated, env=env, capture_output=True, text=True, timeout=120)
    assert smoke.returncode == 0, smoke.stdout + smoke.stderr
    assert "2 passed, 1 deselected" in smoke.stdout


def test_splitbrain_run_of_the_installed_target_is_valid(installed, tmp_path):
    spec, target = resolve_spec(run_args(NAME, tmp_path))
    out = io.StringIO()
    code = execute(spec, target, quiet=True, out=out, parts=loopback_parts(tmp_path / "cluster"))
    assert code == 0, out.getvalue()
    assert "valid (exit 0)" in out.getvalue()
    logs = (tmp_path / "store" / "latest" / "logs")
    assert "primary n1" in (logs / "n2.log").read_text()


# ---- a module path, and a plugin that fails --------------------------------


def test_a_target_that_is_not_installed_runs_as_package_module_class(generated, on_path, tmp_path):
    on_path(generated)  # importable, but no entry point
    assert NAME not in target_names()
    spec, target = resolve_spec(run_args("mykv.plugin:Mykv", tmp_path))
    assert spec.target == "mykv.plugin:Mykv" and target.name == NAME
    code = execute(spec, target, quiet=True, out=io.StringIO(), parts=loopback_parts(tmp_path / "cluster"))
    assert code == 0


def test_a_target_that_fails_to_import_breaks_only_its_own_runs(tmp_path, on_path, capsys):
    site = tmp_path / "site"
    (site / "brokenkv").mkdir(parents=True)
    (site / "brokenkv" / "__init__.py").write_text("import no_such_module_at_all\n")
    info = site / "brokenkv-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: brokenkv\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[splitbrain.targets]\nbrokenkv = brokenkv:Broken\n")
    on_path(site)
    assert "brokenkv" in target_names()  # listed: nothing is imported to list it
    with pytest.raises(PluginError, match="target 'brokenkv'.*ModuleNotFoundError"):
        get_target("brokenkv")
    assert main(["run", "--target", "brokenkv", "--store", str(tmp_path / "store")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "brokenkv" in err and "No module named 'no_such_module_at_all'" in err
    assert main(["run", "--target", "nosuch.module:Thing", "--store", str(tmp_path / "store")]) == 2
    assert "nosuch.module:Thing" in capsys.readouterr().err
    spec, target = resolve_spec(run_args("raftkv", tmp_path))  # every other target still resolves
    assert target.name == "raftkv"
    assert not (tmp_path / "store").exists()


# ---- the real thing ---------------------------------------------------------


@pytest.mark.docker
def test_a_short_docker_run_of_the_installed_template_target_is_valid(installed, tmp_path):
    """Images built from the local base image (one file on top), three containers, kills and partitions."""
    args = run_args(NAME, tmp_path, "--nemesis", "kill,partition", "--nemesis-interval", "2")
    args.time_limit, args.warmup = 8.0, 1.0
    spec, target = resolve_spec(args)
    out = io.StringIO()
    assert execute(spec, target, quiet=True, out=out) == 0, out.getvalue()
