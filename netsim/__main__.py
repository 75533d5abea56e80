"""`python -m netsim`: the command line (see netsim/cli.py)."""

import sys

from .cli import main

sys.exit(main())
