"""One node of the run's Patroni cluster: its patroni.yml and the etcd member beside it.

Pure functions of the ClusterLayout and the settings (tested without Docker);
targets.patroni.plugin hands their output to node.sh, which starts the etcd
member, writes the file and execs Patroni as the postgres user.

The DCS is an etcd member on every node, a static cluster of the run's nodes
built exactly as the etcd target builds its own (targets.etcd.plugin's command,
its node.sh and its defaults), its data in an `etcd` folder of the node's data
dir. Patroni talks to it through its `etcd3` DCS (etcd's v3 API, which etcd
3.4 serves by default; the `etcd` DCS would need the v2 API and
--enable-v2). Patroni's etcd3 module is built on python3-etcd's client, which
is why the image has that package too.

The file is JSON, which is YAML: no YAML writer needed here.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import posixpath
from typing import Any

from targets.base import ClusterLayout, TargetOptions
from targets.etcd.plugin import CLIENT_PORT as ETCD_CLIENT_PORT
from targets.etcd.plugin import PEER_PORT as ETCD_PEER_PORT
from targets.etcd.plugin import Etcd
from targets.patroni.settings import PatroniSettings

POSTGRES_PORT = 5432
REST_PORT = 8008  # Patroni's REST API: the status probe's
SCOPE = "splitbrain"  # the cluster's name in the DCS (/service/splitbrain/...)
BIN_DIR = "/usr/lib/postgresql/15/bin"  # Debian's postgresql-15
POST_BOOTSTRAP = "sh /opt/splitbrain/patroni/post_bootstrap.sh"  # where image_recipe puts it (Patroni splits it)
# Test-only credentials: the run's network is a private bridge of its own. The client's role
# and tables are made by post_bootstrap.sh, which holds the same password.
SUPERUSER = ("postgres", "splitbrain-superuser")
REPLICATION = ("replicator", "splitbrain-replication")
CLIENT_USER = ("splitbrain", "splitbrain")
DATABASE = "postgres"

# PostgreSQL's settings, shared through the DCS (the first primary writes them). Small: five
# servers share two cores. wal_log_hints lets pg_rewind turn a former primary into a replica of
# the new one after a failover (without it, Patroni would have to copy it afresh);
# wal_keep_size keeps enough WAL for a replica that was cut off for a while to catch up by
# streaming. fsync and synchronous_commit are PostgreSQL's defaults (on): a commit is durable on
# the primary before it is acknowledged.
PG_PARAMETERS = {
    "max_connections": 100,
    "shared_buffers": "32MB",
    "wal_level": "replica",
    "hot_standby": "on",
    "wal_log_hints": "on",
    "max_wal_senders": 10,
    "max_replication_slots": 10,
    "wal_keep_size": "128MB",
}


def subnets(layout: ClusterLayout) -> list[str]:
    """The run's networks (a /24 per run and Docker engine, harness.cluster): where replicas and the harness
    connect from. One, unless the nodes are placed on several engines (docs/multi-host.md)."""
    return list(dict.fromkeys(str(ipaddress.ip_network(f"{n.ip}/24", strict=False)) for n in layout.nodes))


def config_path(layout: ClusterLayout) -> str:
    """patroni.yml beside the data dir (both under the node's /var/lib/splitbrain)."""
    return posixpath.join(posixpath.dirname(layout.data_dir.rstrip("/")), "patroni.yml")


def postgres_dir(layout: ClusterLayout) -> str:
    return posixpath.join(layout.data_dir, "pg")


def etcd_layout(layout: ClusterLayout) -> ClusterLayout:
    """The layout the etcd member is started with: etcd's own ports, its data in <data dir>/etcd."""
    return dataclasses.replace(layout, peer_port=ETCD_PEER_PORT, client_port=ETCD_CLIENT_PORT,
                               data_dir=posixpath.join(layout.data_dir, "etcd"))


def etcd_command(node_id: str, layout: ClusterLayout) -> list[str]:
    """argv of this node's etcd member: the etcd target's own, with its default settings, and pre-vote.

    Without pre-vote (off by default in etcd 3.4, on in 3.5), a member coming back from a partition
    calls an election with its raised term and deposes the etcd leader; Patroni's calls fail
    meanwhile and a primary that cannot renew its key for retry_timeout demotes itself. A dev run
    saw exactly that: healing an isolated replica restarted the primary on a new timeline."""
    return [*Etcd().node_command(node_id, etcd_layout(layout), TargetOptions()), "--pre-vote=true"]


def patroni_config(node_id: str, layout: ClusterLayout, settings: PatroniSettings) -> dict[str, Any]:
    ip = layout.ip(node_id)
    nets = subnets(layout)
    return {
        "scope": SCOPE,
        "namespace": "/service/",
        "name": node_id,  # Patroni's member name is the node id: the probe's leader needs no mapping
        "log": {"level": "INFO"},
        "restapi": {"listen": f"0.0.0.0:{REST_PORT}", "connect_address": f"{ip}:{REST_PORT}"},
        # Every member, this node's first: Patroni's client also learns the member list from etcd.
        "etcd3": {"hosts": [f"{ip}:{ETCD_CLIENT_PORT}"] + [f"{n.ip}:{ETCD_CLIENT_PORT}" for n in layout.nodes
                                                           if n.id != node_id]},
        "bootstrap": {
            "dcs": {**settings.dcs(), "postgresql": {"use_pg_rewind": True, "use_slots": True,
                                                    "parameters": PG_PARAMETERS}},
            "initdb": [{"encoding": "UTF8"}, {"locale": "C"}],
            "post_bootstrap": POST_BOOTSTRAP,
        },
        "postgresql": {
            "listen": f"127.0.0.1,{ip}:{POSTGRES_PORT}",
            "connect_address": f"{ip}:{POSTGRES_PORT}",
            "data_dir": postgres_dir(layout),  # survives a kill: a restart is the same container
            "bin_dir": BIN_DIR,
            "pgpass": posixpath.join(layout.data_dir, "pgpass"),
            "authentication": {
                "superuser": {"username": SUPERUSER[0], "password": SUPERUSER[1]},
                "replication": {"username": REPLICATION[0], "password": REPLICATION[1]},
            },
            "parameters": {"unix_socket_directories": layout.data_dir},
            "pg_hba": [
                "local all all trust",
                "host all all 127.0.0.1/32 scram-sha-256",
                # Patroni asks its own PostgreSQL for the timeline over a local replication connection.
                f"host replication {REPLICATION[0]} 127.0.0.1/32 scram-sha-256",
                *(f"host replication {REPLICATION[0]} {net} scram-sha-256" for net in nets),
                *(f"host all all {net} scram-sha-256" for net in nets),
            ],
            # A former primary that cannot be rewound is copied afresh rather than left out.
            "remove_data_directory_on_rewind_failure": True,
            "remove_data_directory_on_diverged_timelines": True,
        },
        "watchdog": {"mode": "off"},  # no /dev/watchdog in a container
        "tags": {"nofailover": False, "noloadbalance": False, "clonefrom": False, "nosync": False},
    }


def config_text(node_id: str, layout: ClusterLayout, settings: PatroniSettings) -> str:
    return "# Written by splitbrain's patroni target (targets/patroni/config.py) on every start.\n" + json.dumps(
        patroni_config(node_id, layout, settings), indent=1) + "\n"
