"""`splitbrain images`: build (or check) the container images a run needs, so the first run does not wait."""

from __future__ import annotations

import argparse
import sys

NAME = "images"
HELP = "build the node images a run needs (cached by content hash)"
DESCRIPTION = """\
Build the images a run of each target needs and keep them in the local Docker
image store. The base image (Debian bookworm with python3, iproute2, iptables,
procps, libfaketime) comes from a registry pull where one answers, otherwise
from Debian's packages with debootstrap and `docker import` (a few minutes,
once). A target image is the base plus the target's own Debian packages
(installed with apt) and its source files.

Tags are hashes of what goes in: editing a target's source or package list
rebuilds only that target's image. A run builds
whatever is missing on its own; this command just does it ahead of time.

examples:
  splitbrain images                    # build what is missing, show what is cached
  splitbrain images --rebuild          # build everything again
  splitbrain images --target raftkv
  splitbrain images --target mypkg.plugin:MyTarget   # a target that is not installed
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", action="append", metavar="NAME",
                   help="only this target (repeatable; default: every known target)")
    p.add_argument("--rebuild", action="store_true", help="rebuild even when cached")


def run(args: argparse.Namespace) -> int:
    from harness.errors import UsageError
    from harness.images import ImageError, docker_client, ensure_image
    from targets.registry import PluginError, get_target, target_names

    targets, broken = [], []
    for n in args.target or target_names():
        try:
            targets.append(get_target(n))
        except PluginError as e:
            if args.target:  # asked for by name: nothing else to do
                raise UsageError(str(e)) from None
            broken.append(str(e))  # one installed target that fails to import must not stop the others
    for line in broken:
        print(f"splitbrain images: skipped: {line}", file=sys.stderr)
    try:
        client = docker_client()
        rebuilt_base = False
        for t in targets:
            # The base is shared: --rebuild rebuilds it once, not once per target.
            tag = ensure_image(t.image_recipe(), rebuild=args.rebuild, rebuild_base=args.rebuild and not rebuilt_base,
                               progress=print, client=client)
            rebuilt_base = True
            print(f"{t.name}: {tag}")
    except ImageError as e:
        raise UsageError(str(e)) from None
    return 2 if broken else 0
