"""The prompt refiner: a short prompt in any language -> a structured English video prompt, or a
storyboard of prompts for the segments of a long video.

It talks to any OpenAI-compatible endpoint (or, without one, refines offline with rules), and
never imports torch, gradio or the video engine.
"""

from .client import Endpoint
from .config import bounds
from .errors import InvalidChoice, InvalidStoryboard, RefinerError, UnknownFamily
from .refiner import PromptRefiner, Reference
from .rules import refine_offline, storyboard_offline
from .schema import (
    CAMERA_MOTIONS,
    MAX_REFERENCES,
    MAX_SEGMENTS,
    MIN_SEGMENTS,
    MOTION_TAGS,
    RefinedPrompt,
    Storyboard,
    Suggestions,
)

__all__ = ["CAMERA_MOTIONS", "MAX_REFERENCES", "MAX_SEGMENTS", "MIN_SEGMENTS", "MOTION_TAGS", "Endpoint",
           "InvalidChoice", "InvalidStoryboard", "PromptRefiner", "RefinedPrompt", "Reference", "RefinerError",
           "Storyboard", "Suggestions", "UnknownFamily", "bounds", "refine_offline", "storyboard_offline"]  # fmt: skip
