"""What the engine and the stores raise when a request cannot be done. They know nothing of
HTTP: ``service/http/errors.py`` maps each kind to a status, in one table."""


class CacheError(Exception):
    """A refusal with a stable machine-readable ``code`` and a message for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class InvalidInput(CacheError):
    """The request asks for something malformed or out of bounds; nothing was changed."""


class NotFound(CacheError):
    """No such entry, namespace, tenant or key, as far as this caller may see."""


class Conflict(CacheError):
    """It exists already (a tenant of that name, an answer for that prompt)."""


class PartlyStored(CacheError):
    """A bulk write that Redis failed partway: which entries were stored (by position, with
    their ids) and which were not. Writing the batch again is safe: an entry is keyed by its
    prompt, so a stored one is replaced in place, not duplicated."""

    def __init__(self, cause: str, stored: list[tuple[int, str]], failed: list[int]) -> None:
        super().__init__(
            "partly_stored",
            f"{len(stored)} of {len(stored) + len(failed)} entries stored before Redis failed "
            f"({cause}); send the batch again, or the failed ones",
        )
        self.stored = stored
        self.failed = failed
