"""One ZooKeeper server of the run's ensemble: its myid, its zoo.cfg, and the java command that runs it.

Pure functions of the ClusterLayout and the settings (tested without Docker);
targets.zookeeper.plugin hands their output to node.sh, which writes the two
files and execs java, so the JVM is the container's main process and a kill
is a SIGKILL to ZooKeeper itself.

Debian's zookeeper package (3.8.0) starts the server as
`java -cp /etc/zookeeper/conf:/usr/share/java/zookeeper.jar ...
org.apache.zookeeper.server.quorum.QuorumPeerMain zoo.cfg` (its init script
and /etc/zookeeper/conf/environment); the jar's manifest Class-Path names
every library it needs but three, which we add: the servlet API (without it
the AdminServer, Jetty, does not start: "Unable to load jetty", a
NoClassDefFoundError for javax/servlet/Servlet) and the logging jars (slf4j's
log4j 1.2 binding and log4j: without them ZooKeeper logs nothing).
"""

from __future__ import annotations

import posixpath

from targets.base import ClusterLayout
from targets.zookeeper.settings import ZooKeeperSettings

CLIENT_PORT = 2181
QUORUM_PORT = 2888  # followers connect to the leader here: only the leader listens on it
ELECTION_PORT = 3888  # every server listens here: the peer port the partition nemesis probes
ADMIN_PORT = 8080  # the AdminServer (Jetty, JSON): whom a follower follows, for the status probe
EPOCH_PORT = 8081  # node.sh's file server of the data dir's currentEpoch, for the status probe

MAIN_CLASS = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
CLASSPATH = ":".join((
    "/etc/zookeeper/conf",
    "/usr/share/java/zookeeper.jar",
    "/usr/share/java/servlet-api.jar",
    "/usr/share/java/slf4j-log4j12.jar",
    "/usr/share/java/log4j-1.2.jar",
))
LOG4J_CONFIG = "/opt/splitbrain/zookeeper/log4j.properties"  # where image_recipe puts log4j.properties
# The four-letter words: `srvr` is the status probe's (mode and zxid); the others are for looking
# around inside a node (`echo mntr | nc 127.0.0.1 2181`).
FOUR_LETTER_WORDS = ("srvr", "stat", "mntr", "ruok", "conf", "cons", "envi", "dirs", "wchs")

# The JVM: five of them share two cores and must start in seconds. A small heap with the serial
# collector, and only the quick JIT tier, which compiles far less at start.
JVM_FLAGS = (
    "-Xms32m", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-XX:-UsePerfData",
    "-Djava.net.preferIPv4Stack=true",
)
# Leader election (FastLeaderElection) doubles the wait between its rounds of notifications up to
# 60 s by default, so a server cut off for 20 s could take half a minute to rejoin after the heal;
# a connection to a peer that does not answer (a partition drops packets) waits 5 s. Both are
# availability knobs, not safety ones: capped at 2 s and 1 s.
ELECTION_FLAGS = (
    "-Dzookeeper.fastleader.maxNotificationInterval=2000",
    "-Dzookeeper.cnxTimeout=1000",
)


def myids(layout: ClusterLayout) -> dict[str, int]:
    """node id -> ZooKeeper server id (myid): its place in the layout, from 1."""
    return {n.id: i for i, n in enumerate(layout.nodes, start=1)}


def config_path(layout: ClusterLayout) -> str:
    """zoo.cfg beside the data dir (both under the node's /var/lib/splitbrain)."""
    return posixpath.join(posixpath.dirname(layout.data_dir.rstrip("/")), "zoo.cfg")


def zoo_cfg(layout: ClusterLayout, settings: ZooKeeperSettings) -> str:
    """The server's zoo.cfg: the same for every server of the ensemble (each learns its id from myid)."""
    lines = [
        "# Written by splitbrain's zookeeper target (targets/zookeeper/ensemble.py) on every start.",
        f"tickTime={settings.tick_ms}",
        f"initLimit={settings.init_limit}",
        f"syncLimit={settings.sync_limit}",
        # The data dir survives a kill (a restart is the same container): snapshots, the
        # transaction log (fsynced before every ack: forceSync is ZooKeeper's default), myid.
        f"dataDir={layout.data_dir}",
        # ZooKeeper grows its transaction log 64 MB at a time (zeros written ahead): 1 MB here, so five
        # servers starting on one disk do not write 320 MB before their first vote.
        "preAllocSize=1024",
        f"clientPort={layout.client_port}",
        "maxClientCnxns=0",
        "admin.enableServer=true",
        f"admin.serverPort={ADMIN_PORT}",
        f"4lw.commands.whitelist={','.join(FOUR_LETTER_WORDS)}",
        # A one-server run is an ensemble of one (a leader of its own epochs), not standalone mode.
        "standaloneEnabled=false",
        "reconfigEnabled=false",
        "autopurge.purgeInterval=0",
    ]
    ids = myids(layout)
    for n in layout.nodes:
        lines.append(f"server.{ids[n.id]}={n.ip}:{QUORUM_PORT}:{ELECTION_PORT}")
    return "\n".join(lines) + "\n"


def java_command(layout: ClusterLayout) -> list[str]:
    """argv of the JVM that runs one server of the ensemble from config_path(layout)."""
    return [
        "java", *JVM_FLAGS, *ELECTION_FLAGS,
        f"-Dlog4j.configuration=file:{LOG4J_CONFIG}",
        "-cp", CLASSPATH, MAIN_CLASS, config_path(layout),
    ]
