"""The error a corpus source raises for bad input (a missing path, a file that does not match its pin). Its own
module so that the source kinds in other modules (harness.data.pinned) can raise it without importing
harness.data.sources, which imports them."""


class SourceError(ValueError):
    pass
