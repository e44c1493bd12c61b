"""Subcommands of the splitbrain CLI, one module each."""
