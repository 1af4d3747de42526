"""Errors a user can act on. The CLI prints them as one line: exit 2 for a `UserError`, exit 3 for an
`IncompleteError`; nothing else does."""


class UserError(Exception):
    """Bad input, configuration or usage: the message says what was expected."""


class DataError(UserError):
    """A file or payload that cannot be read at all (not a bad row: those are quarantined)."""


def first_line(exc: BaseException) -> str:
    """An exception's message as one line, for the one-line errors the CLI and the fleet print."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else "(no message)"


class IncompleteError(UserError):
    """The work stopped part-way for a reason outside the operator's input: a platform unreachable after
    every retry, a push whose outcome is unknown, a job still running. Nothing needs fixing; running the
    same command again finishes it (a repair reads what the platform holds before pushing anything again).

    It is a UserError so that code which carries on past a failed source (pulls, alerts, doctor) treats it
    the same; only the exit code differs."""
