#!/bin/sh
# One Redis server and its Sentinel, as a splitbrain node: node.sh DATA_DIR REDIS_CONF SENTINEL_CONF
# The two files are written on the first start only: Sentinel rewrites both as it learns (the
# primary, the epoch, its peers; REPLICAOF + CONFIG REWRITE on the server), and a restarted node
# must start from that, as a deployed one does. The data dir survives a kill (same container).
# The server runs in the background and the Sentinel is exec'd: a kill (SIGKILL to PID 1) ends the
# container, and with it both.
set -eu
data=$1 redis_text=$2 sentinel_text=$3
mkdir -p "$data/redis" "$data/sentinel"
[ -s "$data/redis/redis.conf" ] || printf '%s' "$redis_text" > "$data/redis/redis.conf"
[ -s "$data/sentinel/sentinel.conf" ] || printf '%s' "$sentinel_text" > "$data/sentinel/sentinel.conf"
redis-server "$data/redis/redis.conf" &
exec redis-sentinel "$data/sentinel/sentinel.conf"
