"""`splitbrain check`: is a recorded history linearizable? Ours, Jepsen's or Porcupine's.

Reads the history (a file or a run folder), validates it, checks it with a
model and prints a verdict. Exit codes follow DESIGN.md: 0 linearizable,
1 not linearizable, 3 unknown (a time limit ran out), 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
from dataclasses import dataclass
from typing import Any

from checkers.verdict import exit_code_for
from harness.errors import UsageError
from history.bounded import (
    MAX_YAML_BYTES,
    check_regular,
    load_yaml,
    loads_json,
    open_input,
    read_text,
)

NAME = "check"
HELP = "check a recorded history for linearizability"
DESCRIPTION = """\
Check a history for linearizability and print the verdict.

PATH is a history file or a run folder (store/<test>/<timestamp>/). For a run
folder, its history.jsonl is checked with the model the run recorded (in
results.json or spec.yaml); a run of a workload with checkers of its own
(the election workload's mutual-exclusion) is judged again by those. The history is validated first: a broken history
(a completion without an invoke, time going backwards, ...) is reported with
its line and exit code 2.

Formats (detected from the extension and the first line unless --format):
  jsonl           splitbrain's own history (default model: kv)
  edn             Jepsen's history.edn; jepsen.independent [k v] values become
                  keys (default model: kv if keyed, else cas-register)
  porcupine-etcd  Porcupine's Jepsen etcd log (implies model etcd)
  porcupine-kv    Porcupine's kv EDN-per-line file (implies model string-kv)"""

EPILOG = """\
examples:
  splitbrain check store/latest
  splitbrain check store/raftkv-register-partition/latest --json
  splitbrain check history.jsonl --model cas-register --initial 0
  splitbrain check history.edn --model kv --time-limit 30
  splitbrain check tests/data/porcupine/jepsen/etcd_002.log
  splitbrain check c50-bad.txt --format porcupine-kv

exit codes: 0 linearizable, 1 not linearizable, 2 bad input, 3 unknown
(a key ran out of --time-limit; the keys that were settled are listed)."""

FORMATS = ("jsonl", "edn", "porcupine-etcd", "porcupine-kv")
# The model a format's data was recorded for, where the format has one.
FORMAT_MODELS = {"porcupine-etcd": "etcd", "porcupine-kv": "string-kv"}

_PORCUPINE_KV_LINE = re.compile(r"\{:process -?\d+, :type :\w+, :f :\w+, :key ")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.add_argument("path", metavar="PATH", help="history file, or run folder holding history.jsonl")
    parser.add_argument(
        "--model",
        metavar="NAME",
        help="register, cas-register, multi-register, kv, set, mutex, etcd or string-kv "
        "(default: the run's model, the format's model, else kv)",
    )
    parser.add_argument(
        "--initial",
        metavar="VALUE",
        help='initial state as JSON, e.g. 0, null, \'""\' (default: the model\'s own)',
    )
    parser.add_argument("--format", choices=FORMATS, help="history format (default: detected)")
    parser.add_argument(
        "--time-limit",
        metavar="S",
        type=float,
        help="seconds per key; a key that runs out is unknown (default: no limit)",
    )
    parser.add_argument("--json", action="store_true", help="print the result dict as JSON")


@dataclass(frozen=True)
class Source:
    """What to read and how: the resolved history file, its format and the
    model it calls for (None: no preference)."""

    path: str
    format: str
    model: str | None
    run_dir: str | None = None


def run(args: argparse.Namespace) -> int:
    from checkers.linearizability import check
    from checkers.models import get_model, model_names

    if args.time_limit is not None and not (args.time_limit > 0 and math.isfinite(args.time_limit)):
        raise UsageError(f"--time-limit must be a positive number of seconds, not {args.time_limit}")
    initial = _parse_initial(args.initial)
    source = resolve_source(args.path, args.format)
    if not args.model and source.model is not None and source.model not in model_names() and source.run_dir:
        return recheck_run(source, args.json)
    warnings: list[str] = []
    ops, keyed = read_operations(source, warnings)
    for warning in warnings:
        print(f"splitbrain check: warning: {warning}", file=sys.stderr)
    model_name = args.model or source.model or default_model(source.format, keyed)
    if source.format == "edn":
        from history.formats.jepsen_edn import knossos_reads

        ops = knossos_reads(ops, model_name)
    try:
        model = get_model(model_name, initial)
    except ValueError as e:
        raise UsageError(str(e)) from None
    try:
        result = check(ops, model, time_limit=args.time_limit)
    except (ValueError, TypeError) as e:
        # Models raise ValueError for an operation they do not know, and a
        # value of the wrong shape (a list where a set read is expected) can
        # surface as TypeError: either way the history was recorded for
        # another model, which the user can fix.
        raise UsageError(
            f"{source.path}: the history does not fit model {model_name}: {e}; choose the model with --model"
        ) from None
    if args.json:
        out = dict(result, path=source.path, format=source.format)
        print(json.dumps(jsonable(out), indent=2))
    else:
        print(summary(result, source, ops))
    return exit_code(result)


def exit_code(result: dict) -> int:
    return exit_code_for(result.get("valid"))


def _parse_initial(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return loads_json(text)
    except ValueError:
        raise UsageError(f"--initial must be a JSON value (e.g. 0, null, '\"\"', '[1, 2]'), not {text!r}") from None


# --- finding the history -------------------------------------------------------


def resolve_source(path: str, fmt: str | None) -> Source:
    """The history file to read, its format and the model its run recorded."""
    if path != "-" and not os.path.exists(path):
        raise UsageError(f"{path}: no such file or folder")
    run_dir = None
    if path != "-" and os.path.isdir(path):
        run_dir = path
        path = os.path.join(path, "history.jsonl")
        if not os.path.isfile(path):
            raise UsageError(f"{run_dir}: a folder without history.jsonl (expected a run folder)")
    elif os.path.basename(path) == "history.jsonl":
        run_dir = os.path.dirname(path) or "."
    check_regular(path)  # before any read: a FIFO or /dev/zero is refused, not read
    if path == "-" and not fmt:
        raise UsageError("reading standard input (-) needs --format")
    fmt = fmt or detect_format(path)
    model = FORMAT_MODELS.get(fmt)
    if run_dir is not None and fmt == "jsonl":
        model = run_model(run_dir) or model
    return Source(path, fmt, model, run_dir)


def recheck_run(source: Source, as_json: bool) -> int:
    """A run whose workload is judged by checkers of its own (an election's mutual-exclusion), not by a
    linearizability model: those checkers again, over its history, as the run's own check ran them."""
    from checkers.composite import check_history
    from harness.commands.run import spec_workload, verdict_lines, verdict_word
    from harness.spec import SpecError, load_spec_file, spec_from_mapping
    from nemesis.registry import facts_reader

    spec_path = os.path.join(source.run_dir, "spec.yaml")
    try:
        spec = spec_from_mapping(load_spec_file(spec_path), spec_path)
    except (SpecError, OSError) as e:
        raise UsageError(f"{source.run_dir}: its spec.yaml cannot be read back: {e}") from None
    checked = check_history(source.path, spec_workload(spec), extra=spec.checkers, fault_facts=facts_reader())
    if "history_error" in checked:
        raise UsageError(f"{source.path}: {checked['history_error']}")
    if as_json:
        print(json.dumps(jsonable(dict(checked, path=source.path, workload=spec.workload)), indent=2))
    else:
        print("\n".join([f"{source.path}: {verdict_word(checked['valid'])} (workload {spec.workload}, "
                          "checked again by its own checkers)", *verdict_lines(checked)]))
    return exit_code_for(checked["valid"])


def detect_format(path: str) -> str:
    """The format of a history file, from its extension and its first line."""
    first = _first_line(path)
    if _PORCUPINE_KV_LINE.match(first):
        return "porcupine-kv"
    ext = os.path.splitext(path)[1].lower()
    if ext in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if ext == ".edn":
        return "edn"
    if ext == ".log" or first.startswith("INFO") and "jepsen.util" in first:
        return "porcupine-etcd"
    if first == "" or first.startswith('{"') or first.startswith("{ "):
        return "jsonl"
    if first.startswith(("{:", "[", "(", "#jepsen")):
        return "edn"
    raise UsageError(f"{path}: cannot tell the history format from its name or first line; pass --format")


def _first_line(path: str) -> str:
    with open_input(path) as f:
        head = f.read(65536)
    for line in head.decode("utf-8", "replace").splitlines():
        if line.strip():
            return line.strip()
    return ""


def run_model(run_dir: str) -> str | None:
    """The model a run folder recorded: results.json's `model` (top level or
    in its linearizability result), else spec.yaml's `model`, else the model
    its workload is checked with."""
    results = _load(os.path.join(run_dir, "results.json"), loads_json)
    if isinstance(results, dict):
        found = _find_model(results)
        if found:
            return found
    spec = _load(os.path.join(run_dir, "spec.yaml"), load_yaml)
    if isinstance(spec, dict):
        if isinstance(spec.get("model"), str):
            return spec["model"]
        workload = spec.get("workload")
        if isinstance(workload, str):
            return _workload_model(workload)
    return None


def _workload_model(name: str) -> str | None:
    """The model a workload is checked with (the workload says), when a folder names no model."""
    from plugins.registry import PluginError
    from workloads.base import make_workload

    try:
        return getattr(make_workload(name, 0), "model", None)
    except (PluginError, TypeError, ValueError):
        return None


def _find_model(results: Any, depth: int = 0) -> str | None:
    """A top-level `model`, else the model of the first linearizability result
    nested anywhere in results.json (however the run loop groups its checks)."""
    if not isinstance(results, dict) or depth > 4:
        return None
    if isinstance(results.get("model"), str) and (depth == 0 or results.get("checker") == "linearizability"):
        return results["model"]
    for value in results.values():
        found = _find_model(value, depth + 1)
        if found:
            return found
    return None


def _load(path: str, parse: Any) -> Any:
    # A run folder's metadata only chooses a default; unreadable metadata
    # must not stop the history from being checked.
    try:
        return parse(read_text(path, MAX_YAML_BYTES * 16))
    except Exception:  # noqa: BLE001
        return None


# --- reading -------------------------------------------------------------------


def read_operations(source: Source, warnings: list[str] | None = None) -> tuple[list, bool]:
    """The client operations of the history, validated; and whether any has a key.
    Raises FormatError (InvalidHistory for a broken contract) for bad input."""
    if source.format == "jsonl":
        from history.events import read_history

        ops = read_history(source.path).client_operations()
    elif source.format == "edn":
        from history.formats.jepsen_edn import read_jepsen_history

        ops = read_jepsen_history(source.path, warnings=warnings).client_operations()
    elif source.format == "porcupine-etcd":
        from history.formats.porcupine import read_porcupine_etcd

        ops = read_porcupine_etcd(source.path)
    else:
        from history.formats.porcupine import read_porcupine_kv

        ops = read_porcupine_kv(source.path)
    return ops, any(op.key is not None for op in ops)


def default_model(fmt: str, keyed: bool) -> str:
    if fmt in FORMAT_MODELS:
        return FORMAT_MODELS[fmt]
    if fmt == "edn" and not keyed:
        return "cas-register"
    return "kv"


# --- output --------------------------------------------------------------------


def jsonable(value: Any) -> Any:
    """A value json.dumps can write as strict JSON (no Infinity, no sets)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k) if not isinstance(k, str) else k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((jsonable(v) for v in value), key=repr)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "__dataclass_fields__"):
        from dataclasses import asdict

        return jsonable(asdict(value))
    return repr(value)


_VERDICTS = {True: "linearizable", False: "NOT linearizable", "unknown": "UNKNOWN"}
_SHOW_BLOCKED = 5


def summary(result: dict, source: Source, ops: list) -> str:
    """The human verdict: a headline, counts, and for an illegal history the
    evidence a person follows (failing key, longest linearizable prefix, the
    state after it, the operations that cannot go next)."""
    valid = result.get("valid")
    lines = [f"{source.path}: {_VERDICTS.get(valid, str(valid))} (model {result.get('model')}, format {source.format})"]
    statuses = {s: sum(1 for op in ops if op.status == s) for s in ("ok", "fail", "info")}
    lines.append(
        f"  operations: {result.get('operations', len(ops))} "
        f"({statuses['ok']} ok, {statuses['fail']} fail, {statuses['info']} info)"
    )
    keys = result.get("keys") or {}
    settled, unknown, unchecked = keys.get("settled", []), keys.get("unknown", []), keys.get("unchecked", [])
    key_line = f"  keys: {len(settled)} settled, {len(unknown)} unknown"
    if unchecked:
        key_line += f", {len(unchecked)} not checked after the failure"
    lines.append(key_line)
    if unknown:
        lines.append(f"  out of time on: {_list(unknown)} (raise --time-limit to settle them)")
    evidence = result.get("evidence")
    if valid is False and isinstance(evidence, dict):
        lines.extend(_evidence_lines(result, evidence))
    elapsed = result.get("elapsed_s")
    if isinstance(elapsed, (int, float)):
        lines.append(f"  time: {elapsed * 1000:.1f} ms" if elapsed < 1 else f"  time: {elapsed:.2f} s")
    return "\n".join(lines)


def _evidence_lines(result: dict, ev: dict) -> list[str]:
    key = result.get("failing_key", ev.get("key"))
    # A model that does not partition (a single register) has one part: say so
    # rather than print a key of null.
    where = "the whole history (the model has no keys)" if key is None else json.dumps(jsonable(key))
    if "partition_operations" in ev:
        where += f", {ev['partition_operations']} operations"
    out = [f"  failing key: {where}"]
    prefix = ev.get("linearized_prefix")
    if isinstance(prefix, list):
        out.append(f"  longest linearizable prefix: {len(prefix)} operations")
    if "state_after_prefix" in ev:
        out.append(f"  state after it: {ev['state_after_prefix']}")
    blocked = ev.get("blocked") or []
    dead_ends = ev.get("legal_but_dead_end") or []
    if blocked:
        out.append("  cannot be placed next:")
        for entry in blocked[:_SHOW_BLOCKED]:
            out.append("    " + _entry(entry))
        if len(blocked) > _SHOW_BLOCKED:
            out.append(f"    ... and {len(blocked) - _SHOW_BLOCKED} more (see --json)")
    if dead_ends:
        out.append(f"  legal next but leading nowhere: {len(dead_ends)} operation{'s' * (len(dead_ends) != 1)}")
    return out


def _entry(entry: Any) -> str:
    if not isinstance(entry, dict):
        return str(entry)
    text = f"op {entry.get('op')}: {entry.get('description')}"
    if entry.get("needs"):
        text += f" (needs state {entry['needs']})"
    return text


def _list(keys: list) -> str:
    shown = ", ".join(json.dumps(jsonable(k)) for k in keys[:10])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > 10 else "")

