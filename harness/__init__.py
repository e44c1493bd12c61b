"""Orchestration: CLI, specs, the run loop, the Docker backend, history recording, the run store."""
