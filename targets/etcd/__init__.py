"""The etcd target: Debian's etcd-server (3.4) as a static Raft cluster, over its v3 JSON gateway (see README.md)."""
