"""The refiner's errors. Each is a message id and its parameters (see the `messages` package): `str()`
gives the English words; the studio renders them in the page's language. The refiner itself turns
every failure of an endpoint into an offline refinement whose warnings say why; what reaches a
caller is a caller's mistake (an unknown family, a storyboard of too many segments)."""

from __future__ import annotations

from messages import MessageError


class RefinerError(MessageError):
    """Anything the refiner reports."""


class UnknownFamily(RefinerError):
    """The refiner has no phrasing for this model family."""


class InvalidChoice(RefinerError):
    """A choice the refiner cannot honour: an unknown style, palette or camera motion, an intensity off
    its 0-1 scale, too many references."""


class InvalidStoryboard(RefinerError):
    """A storyboard the video cannot be made of: too few or too many segments, or a bad length."""


class EndpointFailed(RefinerError):
    """The LLM endpoint gave no usable answer: refused, failed, or too slow. The words hold no secret."""


class FormatRefused(EndpointFailed):
    """The endpoint will not do the response_format asked for; another may do."""


class ImagesRefused(EndpointFailed):
    """The endpoint cannot take images: the request may be sent again without them."""


class InvalidReply(RefinerError):
    """A reply that is not the JSON object asked for; the words say what is wrong with it."""
