"""What marks a run's containers and networks as its own, and how they are removed: by label.

Every container and network a run creates carries `splitbrain.run=<run id>`
and `splitbrain.owner=<host>:<pid>` of the harness that made it. A harness
removes its own at teardown; its reaper (harness/reaper.py) removes them if
the harness dies first; `splitbrain clean` removes what is left of runs
whose harness is gone, and spares runs still in progress.
"""

from __future__ import annotations

import concurrent.futures
import os
import socket

from harness.images import docker_client

RUN_LABEL = "splitbrain.run"
NODE_LABEL = "splitbrain.node"
# Who made it: `clean` without a run id spares runs whose harness is still alive.
OWNER_LABEL = "splitbrain.owner"
# A rogue member the impostor fault started beside the nodes (nemesis/impostor.py): removed with its run.
ROGUE_LABEL = "splitbrain.rogue"


def owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_alive(label: str | None) -> bool:
    """True when the harness process that created something still runs, or may (made on another host)."""
    host, _, pid = (label or "").rpartition(":")
    if not pid.isdigit() or int(pid) == os.getpid():
        return False
    if host != socket.gethostname():
        return True  # cannot see that process from here: spare it

    try:
        os.kill(int(pid), 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def clean(run_id: str | None = None, client=None, include_live: bool = False,
          stuck: list[str] | None = None) -> tuple[int, int]:
    """Remove the containers and networks labelled by splitbrain; (containers, networks) removed.

    With run_id, exactly that run's. Without, every run whose harness process is
    gone (killed), sparing runs still in progress unless include_live. A network
    Docker refuses to remove even after a forced disconnect is left, with a
    sentence saying why appended to `stuck` when given.
    """
    import docker

    client = client or docker_client()
    selector = f"{RUN_LABEL}={run_id}" if run_id else RUN_LABEL

    def orphaned(labels: dict) -> bool:
        return bool(run_id) or include_live or not owner_alive(labels.get(OWNER_LABEL))

    containers = [c["Id"] for c in client.api.containers(all=True, filters={"label": selector})
                  if orphaned(c.get("Labels") or {})]

    def remove(cid: str) -> int:
        try:
            client.api.remove_container(cid, force=True, v=True)
            return 1
        except docker.errors.NotFound:
            return 0
        except docker.errors.APIError as e:
            if "in progress" in str(e):  # someone else's teardown is already removing it
                return 0
            raise

    with concurrent.futures.ThreadPoolExecutor(max(1, min(16, len(containers)))) as ex:
        removed_containers = sum(ex.map(remove, containers))
    removed_networks = 0
    for net in client.networks.list(filters={"label": selector}):
        if not orphaned(net.attrs.get("Labels") or {}):
            continue
        try:
            net.remove()
            removed_networks += 1
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError:
            # A container we did not label still sits on it: disconnect it, then retry.
            net.reload()
            for c in net.containers:
                try:
                    net.disconnect(c, force=True)
                except docker.errors.APIError:
                    pass
            try:
                net.remove()
                removed_networks += 1
            except docker.errors.APIError as e:
                # Seen here: "has active endpoints" on a network with no container at all, an endpoint
                # Docker itself lost track of. Nothing of ours can remove it; say so, and go on.
                if stuck is not None:
                    stuck.append(f"network {net.name} cannot be removed: {getattr(e, 'explanation', None) or e}")
    return removed_containers, removed_networks
