"""The one family of errors services raise when a request cannot be done. They say what is wrong in
words and carry no HTTP status: the API maps each kind to its response in one place
(`api/middleware.py`), and the CLI or a test reads the same kinds."""

from __future__ import annotations


class ServiceError(Exception):
    """Something asked of a service that cannot be done; the message says why."""


class Invalid(ServiceError, ValueError):
    """The request itself is wrong (a bad field, a missing part, an unknown name in it)."""


class NotFound(ServiceError):
    """What the request names does not exist."""


class Conflict(ServiceError):
    """It exists but its state does not allow this now (already done, taken, out of step)."""


class TooLarge(Invalid):
    """Over a size limit."""


class Damaged(Invalid):
    """Content that arrived whole but does not match what was announced (a checksum)."""
