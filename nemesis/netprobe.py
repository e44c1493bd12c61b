"""Network verification: can this node open a TCP connection to those, run from inside the node.

A blocked path shows as a connect timeout (the SYN or the SYN-ACK is dropped
by a grudge); a reachable one as an open port or a refusal (the peer's kernel
answered). The probe is a few lines of python3 run in the node's network
namespace, one thread per destination, so checking a whole cluster costs
about one connect timeout.
"""

from __future__ import annotations

import json

PROBE_SCRIPT = r"""
import json, socket, sys, threading
limit = float(sys.argv[1])
res = {}
def probe(addr):
    host, _, port = addr.rpartition(":")
    s = socket.socket()
    s.settimeout(limit)
    try:
        s.connect((host, int(port))); res[addr] = "open"
    except ConnectionRefusedError:
        res[addr] = "refused"
    except socket.timeout:
        res[addr] = "timeout"
    except OSError as e:
        res[addr] = "unreachable" if e.errno in (101, 113) else "error-%s" % e.errno
    finally:
        s.close()
ts = [threading.Thread(target=probe, args=(a,)) for a in sys.argv[2:]]
[t.start() for t in ts]; [t.join() for t in ts]
print(json.dumps(res))
"""

BLOCKED = ("timeout", "unreachable")
PROBE_ATTEMPTS = 3
REACHABLE = ("open", "refused")


def connect_probe(cluster, src: str, dst_ips: list[str], port: int, limit: float = 0.5) -> dict[str, str]:
    """ip -> open | refused | timeout | unreachable | error-N, as seen from node src."""
    found = probe_addresses(lambda cmd: cluster.exec_netns(src, cmd), [f"{ip}:{port}" for ip in dst_ips],
                            limit, src)
    return {addr.rpartition(":")[0]: result for addr, result in found.items()}


def probe_addresses(run, addresses: list[str], limit: float = 0.5, where: str = "") -> dict[str, str]:
    """"host:port" -> open | refused | timeout | unreachable | error-N, as seen by `run(argv) -> (rc, out)`
    (a docker exec in some container's network namespace)."""
    if not addresses:
        return {}
    cmd = ["python3", "-c", PROBE_SCRIPT, str(limit), *addresses]
    for _ in range(PROBE_ATTEMPTS):
        rc, out = run(cmd)
        if rc != 0:
            raise RuntimeError(f"connect probe from {where} failed (exit {rc}): {out.strip()[-300:]}")
        answer = _answer(out)
        if answer is not None:
            return answer
    # A docker exec on a machine under heavy load (load average 45 on 2 cores) once came back
    # with exit 0 and no output at all; it is the exec that failed, not the network.
    raise RuntimeError(f"connect probe from {where} printed no answer {PROBE_ATTEMPTS} times: {out.strip()[-300:]!r}")


def _answer(out: str) -> dict[str, str] | None:
    lines = out.strip().splitlines()
    try:
        answer = json.loads(lines[-1]) if lines else None
    except ValueError:
        return None
    return answer if isinstance(answer, dict) else None
