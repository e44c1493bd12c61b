#!/bin/sh
# One ZooKeeper server, as a splitbrain node: node.sh ZOO_CFG CONFIG_TEXT DATA_DIR MYID java ARGS...
# Writes zoo.cfg and DATA_DIR/myid (the same on every start: a restart is the same container with
# the same argv, and the data dir with its snapshots and transaction log is kept), then execs
# java: the JVM becomes the container's main process, so a kill is a SIGKILL to ZooKeeper.
set -eu
cfg=$1 text=$2 data_dir=$3 myid=$4
shift 4
printf '%s' "$text" > "$cfg"
mkdir -p "$data_dir"
printf '%s\n' "$myid" > "$data_dir/myid"
exec "$@"
