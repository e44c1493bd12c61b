"""`splitbrain new-target`: write a working target package (plugin, node program, image, smoke test) to start from."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

NAME = "new-target"
HELP = "write a small working target package to copy from (plugin, node program, image, smoke test)"
DESCRIPTION = """\
Write a target package NAME into DIR (default ./NAME): a plugin (the Target
class splitbrain drives), a node program (a tiny HTTP key-value store in
Python's standard library whose first node is the only primary), the image
recipe, a pyproject.toml that registers the target under the entry-point
group splitbrain.targets, a README and a smoke test. It works as written:
replace the node program with your system and the client with yours.

  splitbrain new-target mykv
  pip install -e ./mykv                   # or: PYTHONPATH=./mykv, then --target mykv.plugin:Mykv
  (cd mykv && pytest)                     # the plugin is found, a node serves the API
  splitbrain run --target mykv --nodes 3 --nemesis kill --time-limit 20

The guide is docs/writing-a-target.md.
"""

# The template is a real package (targets/template), linted and tested as is;
# writing it renames its package and class.
TEMPLATE = Path(__file__).resolve().parents[2] / "targets" / "template"
TEMPLATE_NAME, TEMPLATE_CLASS = "tinykv", "TinyKV"
VALID_NAME = re.compile(r"[a-z][a-z0-9_]*")
# splitbrain's own packages (a package of that name would shadow them) and the built-in stores.
RESERVED = ("history", "plugins", "harness", "nemesis", "checkers", "targets", "workloads", "reports", "raftkv", "paxoskv")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", metavar="NAME", help="the target's name: lowercase letters, digits and _ (a Python package name)")
    p.add_argument("dir", metavar="DIR", nargs="?", help="where to write the package (default ./NAME; must not exist)")


def class_name(name: str) -> str:
    """The plugin class of target name: my_kv -> MyKv."""
    return "".join(part.capitalize() for part in name.split("_") if part)


def template_files() -> list[Path]:
    """The template's files, relative to it (caches and build output left out)."""
    skip = {"__pycache__", ".pytest_cache", "build", ".ruff_cache"}
    return sorted(p.relative_to(TEMPLATE) for p in TEMPLATE.rglob("*")
                  if p.is_file() and not skip & set(p.relative_to(TEMPLATE).parts) and ".egg-info" not in str(p))


def write_target(name: str, dest: Path) -> list[Path]:
    """Write the template as target name into dest (which must not exist); the files written."""
    written = []
    for rel in template_files():
        text = (TEMPLATE / rel).read_text()
        text = text.replace(TEMPLATE_CLASS, class_name(name)).replace(TEMPLATE_NAME, name)
        out = dest / Path(*(name if part == TEMPLATE_NAME else part for part in rel.parts))
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        written.append(out)
    return written


def run(args: argparse.Namespace) -> int:
    from harness.errors import UsageError

    if not VALID_NAME.fullmatch(args.name):
        raise UsageError(f"target name {args.name!r}: use lowercase letters, digits and _, starting with a letter")
    if args.name in RESERVED:
        raise UsageError(f"target name {args.name!r} is taken (by splitbrain itself); choose another")
    dest = Path(args.dir or args.name)
    if dest.exists():
        raise UsageError(f"{dest} exists; give a new directory")
    written = write_target(args.name, dest)
    print(f"wrote {len(written)} files to {dest}/ (target {args.name}, class {args.name}.plugin:{class_name(args.name)})")
    print(f"next: pip install -e {dest} && (cd {dest} && pytest) && splitbrain run --target {args.name} --nodes 3")
    return 0
