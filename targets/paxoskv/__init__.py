"""paxoskv: the built-in Multi-Paxos key-value store, standard library only (raftkv's node around a Paxos core)."""
