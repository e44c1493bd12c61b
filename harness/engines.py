"""Docker engines a cluster's nodes are placed on: naming them, reaching them, and giving each the images.

An engine is named the way the docker CLI names one:

- ``""`` or ``default``: the engine of the environment (``DOCKER_HOST``, else the local socket);
- a URL: ``unix:///run/docker2.sock``, ``tcp://host:2375``, ``ssh://user@host`` (the Docker SDK's
  SSH transport: the host's ``docker system dial-stdio`` over the user's ssh);
- anything else: a Docker context (``docker context create ctx-a --docker host=ssh://...``),
  whose endpoint (and TLS material) comes from the CLI's context store.

Placement maps each node to an engine: explicitly (``nodes: {n1: ctx-a, ...}`` in a spec) or
round-robin over a list (``--docker-hosts a,b,c``). Images travel without a registry: an engine
that lacks the run's image gets it from the engine that built it, ``docker save`` streamed into
``docker load`` over the two engines' APIs, a chunk at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

DEFAULT = ""
URL_SCHEMES = ("unix://", "tcp://", "ssh://", "http://", "https://", "npipe://")
CHUNK = 1 << 20  # bytes of an image's tar read at a time from one engine and sent to the other


class EngineError(Exception):
    """An engine that cannot be named, reached or given an image: one line for the user."""


def canonical(name: str | None) -> str:
    name = (name or "").strip()
    return DEFAULT if name == "default" else name


def parse_hosts(text: str) -> list[str]:
    """``a,b,c`` -> engine names, in order; a name may repeat (two nodes per host), none may be blank."""
    names = [canonical(part) for part in text.split(",")]
    if not text.strip() or any(not part.strip() for part in text.split(",")):
        raise EngineError(f"--docker-hosts takes engine names separated by commas, got {text!r}")
    return names


def place(node_ids: Iterable[str], hosts: list[str] | None = None,
          explicit: dict[str, str] | None = None) -> dict[str, str]:
    """node -> engine name: `explicit` where it names the node, else round-robin over `hosts`
    (the default engine when there are none). An explicit entry for a node that does not exist is
    an error, not ignored: it is a typo in a spec."""
    node_ids = list(node_ids)
    explicit = {n: canonical(e) for n, e in (explicit or {}).items()}
    unknown = sorted(set(explicit) - set(node_ids))
    if unknown:
        raise EngineError(f"placement names node(s) {', '.join(unknown)} the cluster does not have "
                          f"(nodes: {', '.join(node_ids)})")
    hosts = [canonical(h) for h in hosts] if hosts else [DEFAULT]
    rest = [n for n in node_ids if n not in explicit]
    out = {n: hosts[i % len(hosts)] for i, n in enumerate(rest)}
    out.update(explicit)
    return {n: out[n] for n in node_ids}


def engines_in(placement: dict[str, str]) -> list[str]:
    """The engines a placement uses, each once, in the order of first use (the first is the home engine:
    it builds the images and holds whatever is not a node, such as impostors)."""
    return list(dict.fromkeys(placement.values())) or [DEFAULT]


def is_local(name: str) -> bool:
    """Is this engine on this machine (its bridges are routable from here)?"""
    return name == DEFAULT or name.startswith("unix://")


def connect(name: str, timeout: float = 120):
    """A Docker client for the engine `name`, pinged; EngineError saying which engine and why if not."""
    import docker

    from harness.images import ImageError, docker_client

    name = canonical(name)
    if name == DEFAULT:
        try:
            return docker_client()
        except ImageError as e:
            raise EngineError(str(e)) from None
    try:
        if name.startswith(URL_SCHEMES):
            client = docker.DockerClient(base_url=name, timeout=timeout)
        else:
            from docker.context import ContextAPI

            ctx = ContextAPI.get_context(name)
            if ctx is None:
                raise EngineError(f"no Docker context named {name!r} (docker context ls lists them; "
                                  "or give a URL such as ssh://user@host)")
            client = docker.DockerClient(base_url=ctx.Host, tls=ctx.TLSConfig or False, timeout=timeout)
        client.ping()
        return client
    except EngineError:
        raise
    except Exception as e:  # the SDK raises several types for "cannot reach it"
        raise EngineError(f"cannot reach the Docker engine {name!r}: {type(e).__name__}: "
                          f"{str(e).splitlines()[0][:200] if str(e) else 'no answer'}") from None


def distribute_image(tag: str, source, target, progress: Callable[[str], None] = print,
                     target_name: str = "") -> bool:
    """Give `target` the image `tag` from `source` if it lacks it (docker save | docker load over the APIs,
    streamed a chunk at a time, so no whole image sits in memory); whether it had to be sent."""
    from harness.images import image_exists

    if image_exists(target, tag):
        return False
    progress(f"image {tag}: sending to engine {target_name or 'default'} (docker save | docker load)")
    try:
        stream = source.api.get_image(tag, chunk_size=CHUNK)
        for said in target.api.load_image(stream) or ():  # the engine's answer is a stream too
            if isinstance(said, dict) and said.get("error"):
                raise EngineError(said["error"])
    except Exception as e:
        raise EngineError(f"could not give engine {target_name or 'default'} the image {tag}: "
                          f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}") from None
    if not image_exists(target, tag):
        raise EngineError(f"engine {target_name or 'default'} loaded the image stream but has no {tag} after it")
    return True


# ---- forwarding between engines on this machine ---------------------------------------------------

def _comment(run_id: str) -> str:
    return f"splitbrain:{run_id}"


def forwarding_rules(run_id: str, subnets: list[str]) -> list[list[str]]:
    """The iptables rules (as -I arguments) that let these subnets reach each other across bridges:
    accepted ahead of Docker's FORWARD isolation, and never masqueraded (a node must see its peer's own
    address, which is what the nemesis's partitions match)."""
    tag = ["-m", "comment", "--comment", _comment(run_id)]
    rules = []
    for a in subnets:
        for b in subnets:
            # Within one subnet too: an engine that leaves iptables to the first one (the second engine
            # of scripts/second-engine) has no rule of its own accepting its bridge's traffic.
            rules.append(["-t", "filter", "-I", "DOCKER-USER", "-s", a, "-d", b, *tag, "-j", "ACCEPT"])
            if a != b:
                rules.append(["-t", "nat", "-I", "POSTROUTING", "-s", a, "-d", b, *tag, "-j", "RETURN"])
    return rules


def _iptables(args: list[str], run=None) -> tuple[int, str]:
    import subprocess

    run = run or subprocess.run
    try:
        done = run(["iptables", "-w", "5", *args], capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.TimeoutExpired) as e:
        return 1, str(e)
    return done.returncode, (done.stdout or "") + (done.stderr or "")


def open_forwarding(run_id: str, subnets: list[str], run=None) -> list[tuple[str, str]]:
    """Add forwarding_rules on this machine; the (src, dst) pairs opened. EngineError if iptables refuses."""
    for rule in forwarding_rules(run_id, subnets):
        rc, out = _iptables(rule, run)
        if rc != 0:
            close_forwarding(run_id, run)
            raise EngineError(f"cannot open forwarding between the run's networks ({' '.join(rule)}): "
                              f"{out.strip().splitlines()[-1] if out.strip() else 'iptables failed'}")
    return [(a, b) for a in subnets for b in subnets if a != b]


def close_forwarding(run_id: str, run=None) -> int:
    """Delete every rule this run added (found by its comment in `iptables -S`); how many."""
    removed = 0
    for table in ("filter", "nat"):
        rc, listing = _iptables(["-t", table, "-S"], run)
        if rc != 0:
            continue
        for line in listing.splitlines():
            parts = [p.strip('"') for p in line.split()]  # iptables -S quotes a comment
            if len(parts) < 2 or parts[0] != "-A" or _comment(run_id) not in parts:
                continue
            if _iptables(["-t", table, "-D", *parts[1:]], run)[0] == 0:
                removed += 1
    return removed
