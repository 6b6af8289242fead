"""The studio service: the meaning of the page's clicks, with no gradio in it (see service.py).

app.py wires a gradio page to it; a REST API and a durable job queue will sit on it next.
"""

from .jobs import Jobs
from .panel import Panel, gpu_panel
from .service import FORM, LEVER_CHOICES, Outcome, Refined, Studio, StudioError

__all__ = ["FORM", "LEVER_CHOICES", "Jobs", "Outcome", "Panel", "Refined", "Studio", "StudioError", "gpu_panel"]
