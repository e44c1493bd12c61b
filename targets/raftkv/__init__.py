"""raftkv: the built-in Raft key-value store, standard library only."""
