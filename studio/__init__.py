"""The studio service: the meaning of the page's clicks, with no gradio in it (see service.py).

app.py wires a gradio page to it, api.py a REST API; every video job goes through the job store
(store.py) and its one worker (worker.py), put together in hosting.py.
"""

from .panel import Panel, gpu_panel
from .service import FORM, LEVER_CHOICES, Outcome, Refined, Studio, StudioError

__all__ = ["FORM", "LEVER_CHOICES", "Outcome", "Panel", "Refined", "Studio", "StudioError", "gpu_panel"]
