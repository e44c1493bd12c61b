"""Plugins by name: one mechanism for targets, fault families, workloads and checkers.

`plugins.registry.Registry` is the one place a name becomes a value: built in,
installed by another package through an entry point, registered at run time
(a test's own fault family), or named directly as `package.module:Attr`.
It imports nothing else of splitbrain, so every layer may use it.
"""
