"""The parts of the daemon a log entry comes from (``SYMBID_COMPONENT`` in the journal,
``component`` in a log file's lines; ``symbi logs --filter``).

A module of its own, standard library only, so that ``symbi`` builds its parser without
importing the model.
"""

from __future__ import annotations

LOG_COMPONENTS = ("scheduler", "executor", "delivery", "policy", "api", "store")
