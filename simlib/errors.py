"""One exception type for every mistake in user input.

The CLI turns a :class:`SimlibInputError` into a single line on stderr and exit status 2; the Python API lets
it propagate so that notebooks see the same message.
"""
from __future__ import annotations


class SimlibInputError(ValueError):
    """Bad user input: names the file (or source), the field and what was expected."""

    def __init__(self, source: str | None, field: str | None, message: str):
        self.source = source
        self.field = field
        self.message = message
        where = ": ".join(part for part in (source, field) if part)
        super().__init__(f"{where}: {message}" if where else message)

    def __reduce__(self):
        """Picklable, so an error raised in a worker process or on a Dask worker reaches the CLI intact."""
        return type(self), (self.source, self.field, self.message)
