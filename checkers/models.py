"""Sequential models for the linearizability checker: what each data type does, one small object each.

A model says how one operation moves a state (`step`), how a history splits
into independent parts (`partition`, P-compositionality) and how to put a
state or an operation into words for evidence. The search in
`checkers.linearizability` knows nothing of any concrete model, so adding a
data type is adding a class here and a line in `MODELS`.

States are small hashable values (None, ints, strings, tuples, frozensets)
because the search memoises (linearized set, state) pairs.

Speed hook: `transition(op)` returns a function state -> tuple of next
states, built once per operation, so the search's inner loop makes one call
with no string dispatch. `step(state, op)` is the same thing, spelled the way
the Protocol reads; both return an empty tuple when the operation is illegal
in that state.

A new model subclasses `BaseModel` and writes `transition` (plus `init`,
`partition` and the descriptions where the defaults do not fit). The other
hooks only make the search faster and default to "no shortcut":
`read_only` (ops that never change a state are placed greedily),
`effect_key` (ops with equal keys are interchangeable), and the growth-pruning
hooks `resets` / `reachable` / `reset_allows` / `reset_key` / `read_key`
(a pending read that can no longer hold ends a branch early). Each must be
sound for the model: a wrong hook gives a wrong verdict, which is why the
differential tests run every model against a brute-force oracle.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from history.operation import UNKNOWN, Operation, observed

Transition = Callable[[Any], tuple]

_ILLEGAL: tuple = ()


def freeze(value: Any) -> Any:
    """A hashable copy of a JSON value, so lists read from a history can be states."""
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, freeze(v)) for k, v in value.items()))
    if isinstance(value, set | frozenset):
        return frozenset(freeze(v) for v in value)
    return value


class Model(Protocol):
    """The contract the search relies on (see the module docstring)."""

    name: str

    def init(self) -> Any: ...

    def step(self, state: Any, op: Operation) -> tuple: ...

    def transition(self, op: Operation) -> Transition: ...

    def read_only(self, op: Operation) -> bool: ...

    def relevant(self, op: Operation) -> bool: ...

    def partition(self, ops: Sequence[Operation]) -> dict[Any, list[Operation]]: ...

    def describe_state(self, state: Any) -> str: ...

    def describe_op(self, op: Operation) -> str: ...

    def needs(self, op: Operation) -> str | None: ...

    def effect_key(self, op: Operation) -> Any: ...

    def resets(self, op: Operation) -> bool: ...

    def reachable(self, op: Operation) -> Callable[[Any], bool] | None: ...

    def reset_allows(self, reset: Operation, read: Operation) -> bool: ...

    def reset_key(self, op: Operation) -> tuple | None: ...

    def read_key(self, op: Operation) -> tuple | None: ...


class BaseModel:
    """Defaults shared by the models: one partition, fail ops dropped, step via transition."""

    name = "base"

    def init(self) -> Any:
        return None

    def transition(self, op: Operation) -> Transition:
        raise NotImplementedError

    def step(self, state: Any, op: Operation) -> tuple:
        return self.transition(op)(state)

    def read_only(self, op: Operation) -> bool:
        """True when the op never changes any state (a read): the search may place it greedily."""
        return False

    def relevant(self, op: Operation) -> bool:
        """A `fail` op certainly did not happen, so it takes no part in the search."""
        return op.status != "fail"

    def partition(self, ops: Sequence[Operation]) -> dict[Any, list[Operation]]:
        return {None: list(ops)}

    def describe_state(self, state: Any) -> str:
        return "nil" if state is None else repr(state)

    def describe_op(self, op: Operation) -> str:
        """e.g. "p3 write 'k7' 4", "p1 read -> 2", "p2 cas [1, 4] [info]"."""
        reads = self.read_only(op)
        value = "" if reads and op.value is None else f" {_show(op.value)}"
        out = f" -> {_show(op.output)}" if reads and op.status == "ok" else ""
        status = "" if op.status == "ok" else f" [{op.status}]"
        key = "" if op.key is None else f" {op.key!r}"
        return f"p{op.process} {op.f}{key}{value}{out}{status}"

    def needs(self, op: Operation) -> str | None:
        """The state an op needs to be placed, in words (None: it can go anywhere)."""
        return None

    def effect_key(self, op: Operation) -> Any:
        """Ops with equal keys move every state alike, so the search may treat them as one."""
        return (op.f, freeze(op.value), op.status, freeze(op.output))

    # Pruning hooks for models whose state only grows between resets (appends,
    # set adds). While no reset op can still come before a pending read, the
    # search drops a configuration from which that read can no longer hold.

    def resets(self, op: Operation) -> bool:
        """May this op put the state back somewhere growth cannot reach? (True: assume so.)"""
        return True

    def reachable(self, op: Operation) -> Callable[[Any], bool] | None:
        """For a read: state -> can growth alone still make this read legal? None: can't tell."""
        return None

    def reset_allows(self, reset: Operation, read: Operation) -> bool:
        """Could `read` still hold if `reset` came before it (then growth)? True: assume so."""
        return True

    # A faster form of reset_allows for models where it is equality: (key,)
    # for what a reset leaves and what a read needs; None: ask reset_allows.

    def reset_key(self, op: Operation) -> tuple | None:
        return None

    def read_key(self, op: Operation) -> tuple | None:
        return None


def _show(value: Any) -> str:
    return "nil" if value is None else repr(value)


def _accept_any(state: Any) -> tuple:
    return (state,)


def _by_key(ops: Sequence[Operation]) -> dict[Any, list[Operation]]:
    parts: dict[Any, list[Operation]] = {}
    for op in ops:
        parts.setdefault(freeze(op.key), []).append(op)
    return parts


class _Register(BaseModel):
    """What every register shares: a value that starts at `initial` and that
    only writes and cas change, hence the same growth-pruning hooks (a pending
    read of v needs the value to be v already, unless a write of v may still
    come before it)."""

    def __init__(self, initial: Any = None):
        self.initial = freeze(initial)

    def init(self) -> Any:
        return self.initial

    def reachable(self, op: Operation) -> Callable[[Any], bool] | None:
        return _equals(op) if op.f == "read" and observed(op) else None

    def reset_key(self, op: Operation) -> tuple | None:
        return _written(op)

    def read_key(self, op: Operation) -> tuple | None:
        return (freeze(op.output),) if op.f == "read" and observed(op) else None


class CasRegister(_Register):
    """A register with read, write and compare-and-set; `register` is the same without cas.

    read: output is the value read (None = absent); write: value; cas: value =
    [from, to], an `ok` cas found `from` and stored `to`. An `info` cas may or
    may not have happened; if it happened it succeeded, so it needs `from`.
    """

    def __init__(self, initial: Any = None, name: str = "cas-register", allow_cas: bool = True):
        super().__init__(initial)
        self.name = name
        self.allow_cas = allow_cas

    def read_only(self, op: Operation) -> bool:
        return op.f == "read"

    def transition(self, op: Operation) -> Transition:
        f = op.f
        if f == "read":
            if not observed(op):
                # A read with no known output observed nothing; it constrains no state.
                return _accept_any
            want = freeze(op.output)
            return lambda s: (s,) if s == want else _ILLEGAL
        if f == "write":
            new = (freeze(op.value),)
            return lambda s: new
        if f == "cas" and self.allow_cas:
            old, new_value = _cas_args(op)
            new = (new_value,)
            return lambda s: new if s == old else _ILLEGAL
        raise ValueError(f"model {self.name} cannot do {f!r} (op index {op.index})")

    def needs(self, op: Operation) -> str | None:
        if op.f == "read" and observed(op):
            return self.describe_state(freeze(op.output))
        if op.f == "cas":
            return self.describe_state(_cas_args(op)[0])
        return None

    def resets(self, op: Operation) -> bool:
        return op.f in ("write", "cas")


def _equals(op: Operation) -> Callable[[Any], bool]:
    want = freeze(op.output)
    return lambda state: state == want


def _written(op: Operation) -> tuple | None:
    """(the value a write or cas leaves,), for grouping resets by it."""
    if op.f == "write":
        return (freeze(op.value),)
    if op.f == "cas":
        return (_cas_args(op)[1],)
    return None


def _cas_args(op: Operation) -> tuple[Any, Any]:
    value = op.value
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ValueError(f"cas needs value [from, to], got {value!r} (op index {op.index})")
    return freeze(value[0]), freeze(value[1])


class KeyedCasRegister(CasRegister):
    """`kv`: an independent cas-register per `op.key`, checked key by key."""

    def __init__(self, initial: Any = None):
        super().__init__(initial, name="kv")

    def partition(self, ops: Sequence[Operation]) -> dict[Any, list[Operation]]:
        return _by_key(ops)


class GrowSet(BaseModel):
    """`set`: add(element) and read() -> every element; the state is a frozenset."""

    name = "set"

    def __init__(self, initial: Any = None):
        self.initial = frozenset(freeze(v) for v in (initial or ()))

    def init(self) -> Any:
        return self.initial

    def read_only(self, op: Operation) -> bool:
        return op.f == "read"

    def transition(self, op: Operation) -> Transition:
        if op.f == "add":
            element = freeze(op.value)
            return lambda s: (s | {element},) if element not in s else (s,)
        if op.f == "read":
            if not observed(op):
                return _accept_any
            want = _elements(op)
            return lambda s: (s,) if s == want else _ILLEGAL
        raise ValueError(f"model set cannot do {op.f!r} (op index {op.index})")

    def describe_state(self, state: Any) -> str:
        return "{" + ", ".join(sorted(map(repr, state))) + "}"

    def resets(self, op: Operation) -> bool:
        return False  # elements are never removed

    def reachable(self, op: Operation) -> Callable[[Any], bool] | None:
        if op.f != "read" or not observed(op):
            return None
        return _elements(op).issuperset

    def needs(self, op: Operation) -> str | None:
        if op.f == "read" and observed(op):
            return self.describe_state(_elements(op))
        return None


def _elements(op: Operation) -> frozenset:
    """What a set read returned; None counts as empty."""
    if op.output is None:
        return frozenset()
    if not isinstance(op.output, list | tuple | set | frozenset):
        raise ValueError(f"a set read returns a list, got {op.output!r} (op index {op.index})")
    return frozenset(freeze(v) for v in op.output)


class Mutex(BaseModel):
    """`mutex`: Knossos's mutex. The state is whether it is held; acquire needs
    it free, release needs it held, by anyone: like Knossos's, the model does
    not track which process holds it, so a release by another process is
    legal (a lock with owners is checked by checkers/mutual_exclusion)."""

    name = "mutex"

    def init(self) -> Any:
        return False

    def transition(self, op: Operation) -> Transition:
        if op.f == "acquire":
            return _take
        if op.f == "release":
            return _give
        raise ValueError(f"model mutex cannot do {op.f!r} (op index {op.index})")

    def describe_state(self, state: Any) -> str:
        return "held" if state else "free"

    def effect_key(self, op: Operation) -> Any:
        return (op.f, op.status)

    def needs(self, op: Operation) -> str | None:
        if op.f == "acquire":
            return "free"
        if op.f == "release":
            return "held"
        return None


_HELD, _FREED = (True,), (False,)


def _take(held: Any) -> tuple:
    return _ILLEGAL if held else _HELD


def _give(held: Any) -> tuple:
    return _FREED if held else _ILLEGAL


class MultiRegister(BaseModel):
    """`multi-register`: Knossos's registers named by keys, read and written in transactions.

    One f, `txn`, whose value is a list of `[f, key, value]` micro-ops with f
    `read` or `write`, applied in order. An ok txn's completion carries the
    values its reads saw; an info txn keeps its invoke's (reads of nil). As in
    Knossos, a read of nil is always legal: it says the value is unknown, so
    a key that was never written reads as unknown too. `initial` is a map of
    keys to values (missing keys start as nil). The state is a sorted tuple
    of (key, value) pairs so the search can memoise it.
    """

    name = "multi-register"

    def __init__(self, initial: Any = None):
        if initial is None:
            initial = {}
        if not isinstance(initial, dict):
            raise ValueError(f"multi-register's initial state is a map of keys to values, not {initial!r}")
        self.initial = _registers({k: freeze(v) for k, v in initial.items()})

    def init(self) -> Any:
        return self.initial

    def read_only(self, op: Operation) -> bool:
        return op.f == "txn" and all(m[0] == "read" for m in _micro_ops(op, op.value))

    def transition(self, op: Operation) -> Transition:
        if op.f != "txn":
            raise ValueError(f"model multi-register cannot do {op.f!r}, only txn (op index {op.index})")
        txn = op.output if op.status == "ok" and op.output is not UNKNOWN else op.value
        micro = [(f, freeze(k), freeze(v)) for f, k, v in _micro_ops(op, txn)]
        if not any(f == "write" for f, _, _ in micro) and all(v is None for _, _, v in micro):
            return _accept_any

        def step(state: Any) -> tuple:
            regs = dict(state)
            for f, k, v in micro:
                if f == "write":
                    regs[k] = v
                elif v is not None and regs.get(k) != v:
                    return _ILLEGAL
            return (_registers(regs),)

        return step

    def describe_state(self, state: Any) -> str:
        return "{" + ", ".join(f"{k!r}: {'nil' if v is None else repr(v)}" for k, v in state) + "}"


def _registers(regs: dict) -> tuple:
    # Keys from EDN are strings, from tests maybe ints: sort by repr so mixed keys still sort.
    return tuple(sorted(((k, v) for k, v in regs.items() if v is not None), key=lambda kv: repr(kv[0])))


def _micro_ops(op: Operation, txn: Any) -> list[tuple[Any, Any, Any]]:
    if not isinstance(txn, list | tuple):
        raise ValueError(f"a txn is a list of [f, key, value], got {txn!r} (op index {op.index})")
    out = []
    for m in txn:
        if not isinstance(m, list | tuple) or len(m) != 3 or m[0] not in ("read", "write"):
            raise ValueError(f"a txn micro-op is [read|write, key, value], got {m!r} (op index {op.index})")
        out.append((m[0], m[1], m[2]))
    return out


class EtcdRegister(_Register):
    """`etcd`: the cas register of Porcupine's etcd Jepsen logs, with that grammar's meanings.

    Unlike our own histories, the log's `:fail` lines take part: a failed cas
    completed and found a value other than `from` (it must NOT match), and a
    `:fail :read :timed-out` is a completed read whose output is unknown. An
    `:info` write or cas may have happened at any point; an unknown cas that
    happened did whatever the state allowed. This reproduces Porcupine's verdicts.
    """

    name = "etcd"

    def relevant(self, op: Operation) -> bool:
        return True

    def read_only(self, op: Operation) -> bool:
        return op.f == "read" or (op.f == "cas" and op.status == "fail")

    def transition(self, op: Operation) -> Transition:
        f, status = op.f, op.status
        if f == "read":
            if not observed(op):
                return _accept_any
            want = freeze(op.output)
            return lambda s: (s,) if s == want else _ILLEGAL
        if f == "write":
            new = (freeze(op.value),)
            return lambda s: new
        if f == "cas":
            old, new_value = _cas_args(op)
            new = (new_value,)
            if status == "ok":
                return lambda s: new if s == old else _ILLEGAL
            if status == "fail":
                return lambda s: (s,) if s != old else _ILLEGAL
            # Outcome unknown: whichever way the compare went is acceptable.
            return lambda s: new if s == old else (s,)
        raise ValueError(f"model etcd cannot do {f!r} (op index {op.index})")

    # A failed cas changes nothing here, so it does not reset the value.

    def resets(self, op: Operation) -> bool:
        return op.f == "write" or (op.f == "cas" and op.status != "fail")

    def needs(self, op: Operation) -> str | None:
        if op.f == "read" and observed(op):
            return self.describe_state(freeze(op.output))
        if op.f == "cas" and op.status == "ok":
            return self.describe_state(_cas_args(op)[0])
        if op.f == "cas" and op.status == "fail":
            return f"anything but {self.describe_state(_cas_args(op)[0])}"
        return None


class StringKV(BaseModel):
    """`string-kv`: Porcupine's kv model; each key holds a string starting at "".

    get -> the current string, put replaces it, append concatenates; checked key by key.
    """

    name = "string-kv"

    def __init__(self, initial: Any = None):
        self.initial = "" if initial is None else str(initial)

    def init(self) -> Any:
        return self.initial

    def read_only(self, op: Operation) -> bool:
        return op.f == "get"

    def partition(self, ops: Sequence[Operation]) -> dict[Any, list[Operation]]:
        return _by_key(ops)

    def transition(self, op: Operation) -> Transition:
        f = op.f
        if f != "get" and not isinstance(op.value, str):
            raise ValueError(f"{f} needs a string value, got {op.value!r} (op index {op.index})")
        if f == "get":
            if not observed(op):
                return _accept_any
            want = "" if op.output is None else op.output
            if not isinstance(want, str):
                raise ValueError(f"get returns a string, got {want!r} (op index {op.index})")
            return lambda s: (s,) if s == want else _ILLEGAL
        if f == "put":
            new = (op.value,)
            return lambda s: new
        if f == "append":
            tail = op.value
            return lambda s: (s + tail,)
        raise ValueError(f"model string-kv cannot do {f!r} (op index {op.index})")

    def describe_state(self, state: Any) -> str:
        return repr(state)

    def resets(self, op: Operation) -> bool:
        return op.f == "put"

    def reset_allows(self, reset: Operation, read: Operation) -> bool:
        # After a put of v the string grows from v, so the get needs v as a prefix.
        want = read.output
        if read.f != "get" or not observed(read) or not isinstance(want, str) or not isinstance(reset.value, str):
            return True
        return reset.f != "put" or want.startswith(reset.value)

    def reachable(self, op: Operation) -> Callable[[Any], bool] | None:
        # Appends only extend the string, so a get can still hold only if the
        # string so far is a prefix of what it read.
        if op.f != "get" or not observed(op):
            return None
        want = "" if op.output is None else op.output
        return want.startswith if isinstance(want, str) else None

    def needs(self, op: Operation) -> str | None:
        if op.f == "get" and observed(op):
            return repr("" if op.output is None else op.output)
        return None


MODELS: dict[str, Callable[..., Model]] = {
    "register": lambda initial=None: CasRegister(initial, name="register", allow_cas=False),
    "cas-register": lambda initial=None: CasRegister(initial),
    "kv": KeyedCasRegister,
    "set": GrowSet,
    "mutex": lambda initial=None: Mutex(),
    "multi-register": MultiRegister,
    "etcd": EtcdRegister,
    "string-kv": StringKV,
}


def get_model(name: str, initial: Any = None) -> Model:
    """The model called `name`, starting from `initial`; ValueError names the choices."""
    try:
        make = MODELS[name]
    except KeyError:
        raise ValueError(
            f"unknown model {name!r}; choose one of: {', '.join(sorted(MODELS))}"
        ) from None
    return make(initial)


def model_names() -> Iterable[str]:
    return sorted(MODELS)
