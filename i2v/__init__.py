"""The image-to-video engine: model families, requests, photos, generation and MP4 export.

It never imports gradio, the prompt refiner or the app's settings, and never reads os.environ:
everything it needs comes in through its arguments.
"""

from .errors import Cancelled, I2VError, InvalidInput, ModelNotAvailable, OutOfMemory

__all__ = ["Cancelled", "I2VError", "InvalidInput", "ModelNotAvailable", "OutOfMemory"]
