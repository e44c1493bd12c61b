"""Pure functions from a history to a verdict: linearizability, split-brain, lost writes, statistics."""
