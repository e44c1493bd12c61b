"""pytest configuration shared by every test module.

Hypothesis: on a developer's machine every run explores new examples (that is
how the fuzz tests find bugs); in CI (CI=true) the examples are derandomised,
so a landing is judged on the same examples every time and a failure there
reproduces. `--hypothesis-profile=thorough` runs ten times more examples.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile("ci", derandomize=True, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=1000, deadline=None)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
