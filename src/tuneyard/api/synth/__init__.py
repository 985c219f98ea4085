"""The Synth / OpenAI-compatible surface (``/api/v1`` and the ``/api`` aliases ``synth-ai`` calls).

Thin adapters over the same services ``/v1`` uses (DESIGN.md §1); see docs/synth-api.md.
"""

from tuneyard.api.synth import balance, files, fine_tuning, inference, models

routers = [files.router, fine_tuning.router, models.router, *balance.routers, *inference.routers]
