"""``sys.path`` for the sweep scripts run as files — the one copy every entry (`hscl.py`, `l1.py`) runs.

``python sweeps/hscl.py`` puts the script's folder, not the repository, first on ``sys.path`` (and
this folder's generic module names — config, state, grid — would shadow others, in the driver and
in the Ray workers that inherit its path); ``ray job submit --working-dir . -- python
sweeps/hscl.py`` runs it from the job's working dir. Putting the repository root in that folder's
place makes ``import sweeps`` and ``import mmsa_core`` work from any cwd and under ``ray job
submit``, without installing the project. An entry runs this file with ``runpy.run_path`` before
its first ``import sweeps`` (it cannot be imported as ``sweeps._script_path`` before that).
"""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
_REPO = os.path.dirname(_HERE)
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)
