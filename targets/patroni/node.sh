#!/bin/sh
# One Patroni node, as a splitbrain node: node.sh DATA_DIR CONFIG_FILE CONFIG_TEXT ETCD_COMMAND...
# Starts this node's etcd member (ETCD_COMMAND: the etcd target's own node.sh and flags) in the
# background, writes Patroni's configuration, then runs Patroni as the postgres user, since
# PostgreSQL refuses to run as root, and exits with it. This shell stays PID 1: Patroni 3.0.2 as
# PID 1 forks a child that keeps the parent's SIGCHLD reaper, which then reaps the child's own
# subprocesses (initdb, post_bootstrap) from under it ("No child processes": every bootstrap
# failed). A kill SIGKILLs PID 1, which ends the whole node: Patroni, every PostgreSQL process
# and the etcd member. Both data dirs are under DATA_DIR, which survives it.
set -eu
data_dir=$1 cfg=$2 text=$3
shift 3
mkdir -p "$data_dir/etcd"
chown postgres:postgres "$data_dir"
printf '%s' "$text" > "$cfg"
"$@" &
setpriv --reuid=postgres --regid=postgres --init-groups \
    env HOME=/var/lib/postgresql patroni "$cfg"
