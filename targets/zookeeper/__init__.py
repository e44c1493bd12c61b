"""The ZooKeeper target: Debian's zookeeper (3.8) as a ZAB ensemble, driven through kazoo (see README.md)."""
