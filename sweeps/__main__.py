"""``python -m sweeps`` = ``python sweeps/hscl.py`` (the HSCL sweep; see its --help)."""

import sys

from sweeps.hscl import main

sys.exit(main())
