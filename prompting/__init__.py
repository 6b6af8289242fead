"""The prompt refiner: a short prompt in any language -> a structured English video prompt.

It talks to any OpenAI-compatible endpoint (or, without one, refines offline with rules), and
never imports torch, gradio or the video engine.
"""

from .refiner import Endpoint, PromptRefiner
from .rules import refine_offline
from .schema import CAMERA_MOTIONS, MOTION_TAGS, RefinedPrompt, Suggestions

__all__ = ["CAMERA_MOTIONS", "MOTION_TAGS", "Endpoint", "PromptRefiner", "RefinedPrompt", "Suggestions", "refine_offline"]
