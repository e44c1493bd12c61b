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
port, limit = int(sys.argv[1]), float(sys.argv[2])
res = {}
def probe(ip):
    s = socket.socket()
    s.settimeout(limit)
    try:
        s.connect((ip, port)); res[ip] = "open"
    except ConnectionRefusedError:
        res[ip] = "refused"
    except socket.timeout:
        res[ip] = "timeout"
    except OSError as e:
        res[ip] = "unreachable" if e.errno in (101, 113) else "error-%s" % e.errno
    finally:
        s.close()
ts = [threading.Thread(target=probe, args=(ip,)) for ip in sys.argv[3:]]
[t.start() for t in ts]; [t.join() for t in ts]
print(json.dumps(res))
"""

BLOCKED = ("timeout", "unreachable")
PROBE_ATTEMPTS = 3
REACHABLE = ("open", "refused")


def connect_probe(cluster, src: str, dst_ips: list[str], port: int, limit: float = 0.5) -> dict[str, str]:
    """ip -> open | refused | timeout | unreachable | error-N, as seen from node src."""
    if not dst_ips:
        return {}
    cmd = ["python3", "-c", PROBE_SCRIPT, str(port), str(limit), *dst_ips]
    for _ in range(PROBE_ATTEMPTS):
        rc, out = cluster.exec_netns(src, cmd)
        if rc != 0:
            raise RuntimeError(f"connect probe from {src} failed (exit {rc}): {out.strip()[-300:]}")
        answer = _answer(out)
        if answer is not None:
            return answer
    # A docker exec on a machine under heavy load (load average 45 on 2 cores) once came back
    # with exit 0 and no output at all; it is the exec that failed, not the network.
    raise RuntimeError(f"connect probe from {src} printed no answer {PROBE_ATTEMPTS} times: {out.strip()[-300:]!r}")


def _answer(out: str) -> dict[str, str] | None:
    lines = out.strip().splitlines()
    try:
        answer = json.loads(lines[-1]) if lines else None
    except ValueError:
        return None
    return answer if isinstance(answer, dict) else None
