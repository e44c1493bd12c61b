#!/bin/sh
# One ZooKeeper server, as a splitbrain node: node.sh ZOO_CFG CONFIG_TEXT DATA_DIR MYID EPOCH_PORT java ARGS...
# Writes zoo.cfg and DATA_DIR/myid (the same on every start: a restart is the same container with
# the same argv, and the data dir with its snapshots and transaction log is kept), then execs
# java: the JVM becomes the container's main process, so a kill is a SIGKILL to ZooKeeper (and
# takes the file server below with it: the container stops).
#
# Beside it, a read-only file server for the status probe: DATA_DIR/version-2/currentEpoch is
# the epoch the server last accepted as current (a follower's as it syncs with a new leader), and
# no four-letter word or AdminServer command reports it (srvr's Zxid keeps the old epoch until a
# transaction of the new one arrives).
set -eu
cfg=$1 text=$2 data_dir=$3 myid=$4 epoch_port=$5
shift 5
printf '%s' "$text" > "$cfg"
mkdir -p "$data_dir/version-2"
printf '%s\n' "$myid" > "$data_dir/myid"
python3 -m http.server --bind 0.0.0.0 --directory "$data_dir/version-2" "$epoch_port" >/dev/null 2>&1 &
exec "$@"
