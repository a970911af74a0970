"""``python -m sweeps`` = ``python sweeps/hscl.py`` (the HSCL sweep; see its --help)."""

import sys

from sweeps import hscl
from sweeps.cli import main

sys.exit(main(default_method="hscl", description=hscl.__doc__))
