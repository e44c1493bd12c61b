"""The Raft log after a snapshot behaves like a plain list of terms, whatever is cut off."""

from hypothesis import given, settings
from hypothesis import strategies as st

from targets.raftkv.core import RaftLog

actions = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(1, 5), st.integers(1, 4)),
        st.tuples(st.just("truncate"), st.integers(0, 30), st.just(0)),
        st.tuples(st.just("compact"), st.integers(0, 30), st.just(0)),
    ),
    max_size=30,
)


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(actions)
def test_the_log_agrees_with_a_list_of_terms_through_appends_truncations_and_compactions(steps):
    log, terms, floor = RaftLog(), [0], 0  # terms[i] is the term at index i; index 0 is the base
    for action, a, b in steps:
        if action == "append":
            for _ in range(b):
                index = len(terms)
                log.append([{"index": index, "term": terms[-1] + (a > 3), "kind": "noop", "data": None}])
                terms.append(terms[-1] + (a > 3))
        elif action == "truncate" and floor < a < len(terms):
            log.truncate_from(a)
            del terms[a:]
        elif action == "compact" and floor < a < len(terms):
            log.compact(a, terms[a])
            floor = a
        assert log.last_index() == len(terms) - 1
        assert log.last_term() == terms[-1]
        assert log.snap_index == floor
        for i in range(len(terms)):
            assert log.term_at(i) == (terms[i] if i >= floor else None)
        if floor + 1 < len(terms):
            assert [e["index"] for e in log.slice(floor + 1, len(terms))] == list(range(floor + 1, len(terms)))
            first = log.first_index_of_term_at(len(terms) - 1)
            assert terms[first] == terms[-1] and (first == floor + 1 or terms[first - 1] != terms[-1])
