"""``python -m sweeps`` = ``python sweeps/hscl.py`` (the HSCL sweep; see its --help);
``python -m sweeps list`` lists the sweeps and studies of an MLflow store (`sweeps.listing`)."""

import sys

if sys.argv[1:2] == ["list"]:
    from sweeps.listing import main as list_main

    sys.exit(list_main(sys.argv[2:]))

from sweeps import hscl  # noqa: E402
from sweeps.cli import main  # noqa: E402

sys.exit(main(default_method="hscl", description=hscl.__doc__))
