"""The one exception a request's checks raise: the field at fault, the problem, the HTTP status.

Every layer above core raises or catches it; http/errors.py turns it (and every other failure)
into an answer in the route's own shape.
"""

from __future__ import annotations


class RequestError(ValueError):
    """A request the service will not serve, with the field at fault and the HTTP status."""

    def __init__(self, field: str, problem: str, status: int = 400):
        self.field, self.problem, self.status = field, problem, status
        super().__init__(f"{field}: {problem}")
