"""`python -m harness`: the splitbrain command, as the console script runs it."""

import sys

from harness.cli import main

sys.exit(main())
