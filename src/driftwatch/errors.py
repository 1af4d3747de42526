"""Errors a user can act on. The CLI prints them as one line and exits 2; nothing else does."""


class UserError(Exception):
    """Bad input, configuration or usage: the message says what was expected."""


class DataError(UserError):
    """A file or payload that cannot be read at all (not a bad row: those are quarantined)."""


def first_line(exc: BaseException) -> str:
    """An exception's message as one line, for the one-line errors the CLI and the fleet print."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else "(no message)"
