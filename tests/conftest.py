from __future__ import annotations

import os
import sys

# Make `tests.fakes` importable whichever rootdir pytest picks.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
