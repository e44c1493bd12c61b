"""The PostgreSQL + Patroni target (targets/patroni/README.md)."""
