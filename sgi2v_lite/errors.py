"""One exception for every bad input the user can give us.

The CLI turns it into a one-line message and exit code 2; notebooks and the widget show its text.
Everything the user typed, drew or pointed at is checked before any model runs, so a mistake never
surfaces as a traceback from deep inside torch.
"""


class InputError(ValueError):
    """A user input (tracks, image, model name, setting) is invalid; the message says what and where."""


def shorten(text: str, limit: int = 60) -> str:
    """`text` cut to `limit` characters (ending in "..."), so that a 4000-digit number or a megabyte
    of JSON the user gave still fits the one line of an error message."""
    return text if len(text) <= limit else text[: limit - 3] + "..."
