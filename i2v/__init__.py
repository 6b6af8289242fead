"""The image-to-video engine: model families, requests, photos, generation and MP4 export.

It never imports gradio, the prompt refiner or the app's settings, and (but for the `i2v`
command, an entry point that reads I2V_DEVICE) never reads os.environ: everything it needs comes
in through its arguments. Its errors and notes are message ids (the
`messages` package) that the studio renders in the page's language.
"""

from .errors import Cancelled, DiskFull, ExportFailed, I2VError, InvalidInput, ModelNotAvailable, OutOfMemory

__all__ = ["Cancelled", "DiskFull", "ExportFailed", "I2VError", "InvalidInput", "ModelNotAvailable", "OutOfMemory"]
