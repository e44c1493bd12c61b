#!/bin/sh
# One etcd member, as a splitbrain node: node.sh CLUSTER_KEY_FILE ETCD_FLAGS...
# The cluster token is taken from the run's cluster key (the harness writes a
# fresh one per run), so a member of another run can never join this cluster.
# exec: etcd becomes the container's main process, so a kill is a SIGKILL to etcd.
set -eu
key_file=$1
shift
token=$(head -c 16 "$key_file")
exec etcd --initial-cluster-token="splitbrain-$token" "$@"
