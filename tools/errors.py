"""The one exception tools raise for bad input or a failed remote call.

Its message is what the LLM (and the user) reads: say what was wrong and what to do next.
"""


class ToolError(ValueError):
    """A tool could not do what was asked; the message says why and how to fix it."""
