"""The Redis Sentinel target: Debian's redis-server and redis-sentinel (7.0), a primary, its replicas and a Sentinel per node (see README.md)."""
