"""Target plugins: the contract, the built-in Raft store (raftkv), adapters for other systems."""
