"""The history: splitbrain's bottom layer. It imports nothing else of splitbrain.

- `operation`: `Operation`, one invoke paired with its completion (what every checker reads)
- `events`: the JSON Lines event log of a run: `Event`, the writer, the reader and validator, `History`
- `formats`: readers and writers for other tools' histories (Jepsen's EDN, Porcupine's logs), `FormatError`

Checkers, workloads, the nemesis, the reports and the harness depend on this
package; it depends on none of them (tests/test_layers.py enforces it).
"""
