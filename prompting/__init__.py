"""The prompt refiner: a short prompt in any language -> a structured English video prompt.

It talks to any OpenAI-compatible endpoint (or, without one, refines offline with rules), and
never imports torch, gradio or the video engine.
"""

from .client import Endpoint
from .errors import RefinerError, UnknownFamily
from .refiner import PromptRefiner
from .rules import refine_offline
from .schema import CAMERA_MOTIONS, MOTION_TAGS, RefinedPrompt, Suggestions

__all__ = ["CAMERA_MOTIONS", "MOTION_TAGS", "Endpoint", "PromptRefiner", "RefinedPrompt", "RefinerError", "Suggestions",
           "UnknownFamily", "refine_offline"]  # fmt: skip
