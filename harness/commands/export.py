"""`splitbrain export`: write a history in another tool's format (Knossos/Elle's EDN, Porcupine's logs)."""

from __future__ import annotations

import argparse
import json
import sys

from harness.errors import UsageError

NAME = "export"
HELP = "write a history as Jepsen EDN (Knossos, Elle) or a Porcupine log"
DESCRIPTION = """\
Write a history (a run folder, our history.jsonl, or a Jepsen history.edn) in
another tool's format, so Knossos, Elle or Porcupine can check it too.

Formats:
  edn        Jepsen's history.edn, one op map per line; keyed values become
             jepsen.independent [key value] tuples. Knossos reads a read of
             nil as "unknown" in its register models: such reads are counted
             in a warning, since ours meant "saw nothing".
  porcupine  Porcupine's Jepsen etcd log for a register (read, write, cas on
             integers; one key: the only one, or --key), or its kv format
             for get/put/append on strings. Line order is time, failed ops
             are left out (they did not happen), unknown outcomes are
             :info/:timed-out (etcd) or an invoke left open (kv).

examples:
  splitbrain export store/latest --format edn > history.edn
  splitbrain export history.jsonl --format porcupine --key '"x"' -o x.log

exit codes: 0 written, 2 bad input or a history the format cannot hold."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", metavar="RUN_OR_HISTORY", help="a run folder, history.jsonl or history.edn")
    p.add_argument("--format", required=True, choices=("edn", "porcupine"), help="what to write")
    p.add_argument("--from", dest="source_format", choices=("jsonl", "edn"),
                   help="the input's format (default: detected)")
    p.add_argument("--key", metavar="JSON", help="porcupine: the key to export, as JSON (e.g. '\"x\"' or 3)")
    p.add_argument("-o", "--output", metavar="FILE", help="write here instead of standard output")


def run(args: argparse.Namespace) -> int:
    from harness.commands.check import resolve_source

    source = resolve_source(args.path, args.source_format)
    warnings: list[str] = []
    events = read_events(source.path, source.format, warnings)
    if args.format == "edn":
        from history.formats.jepsen_edn import event_to_edn

        lines = [event_to_edn(e) for e in events]
        nil_reads = sum(1 for e in events if e.is_client and e.type == "ok" and e.f == "read"
                        and e.value is None and e.extra.get("unknown") is not True)
        if nil_reads and source.format == "jsonl":
            warnings.append(f"{nil_reads} read{'s' * (nil_reads > 1)} of nil: Knossos's register models "
                            "read nil as 'value unknown', not 'saw nothing'")
    else:
        lines = porcupine_lines(events, args.key)
    for warning in warnings:
        print(f"splitbrain export: warning: {warning}", file=sys.stderr)
    text = "".join(line + "\n" for line in lines)
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as out:
                out.write(text)
        except OSError as e:
            raise UsageError(f"{args.output}: cannot write: {e.strerror or e}") from None
        print(f"{args.output}: {len(lines)} lines ({args.format})", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def read_events(path: str, fmt: str, warnings: list[str]) -> list:
    """The validated events of a history (FormatError for bad input)."""
    if fmt == "jsonl":
        from history.events import read_history

        return list(read_history(path).events)
    if fmt == "edn":
        from history.formats.jepsen_edn import read_jepsen_history

        return list(read_jepsen_history(path, warnings=warnings).events)
    raise UsageError(f"{path}: export reads our JSON Lines or Jepsen EDN histories, not {fmt}")


def porcupine_lines(events: list, key_text: str | None) -> list[str]:
    from history.formats.porcupine import events_to_porcupine_etcd, events_to_porcupine_kv

    client = [e for e in events if e.is_client]
    try:
        if client and all(e.f in ("get", "put", "append") for e in client):
            return events_to_porcupine_kv(events)
        keys = {json.dumps(e.key) for e in client}
        if key_text is not None:
            try:
                key = json.loads(key_text)
            except ValueError:
                raise UsageError(f"--key must be JSON (e.g. '\"x\"' or 3), not {key_text!r}") from None
        elif len(keys) > 1:
            shown = ", ".join(sorted(keys)[:5])
            raise UsageError(f"Porcupine's etcd log holds one register and this history has {len(keys)} keys "
                             f"({shown}{', ...' if len(keys) > 5 else ''}); choose one with --key")
        else:
            key = client[0].key if client else None
        lines = events_to_porcupine_etcd(events, key)
    except ValueError as e:
        raise UsageError(f"cannot write as Porcupine's format: {e}") from None
    if client and not lines:
        raise UsageError(f"no operations on key {json.dumps(key)}")
    return lines


