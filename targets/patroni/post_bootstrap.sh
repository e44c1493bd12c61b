#!/bin/sh
# Patroni's bootstrap.post_bootstrap: run once, by the node that initialised the cluster (initdb),
# with a superuser connection string as $1, before the cluster is opened to replicas and clients.
# The workload's role and tables (targets/patroni/client.py says what each is for).
set -eu
exec psql -v ON_ERROR_STOP=1 -q "$1" <<'SQL'
CREATE ROLE splitbrain LOGIN PASSWORD 'splitbrain';
CREATE TABLE registers (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE set_elements (key text NOT NULL, element text NOT NULL, PRIMARY KEY (key, element));
GRANT SELECT, INSERT, UPDATE ON registers, set_elements TO splitbrain;
SQL
