"""Exit codes: a contract with schedulers (cron, systemd, orchestrators). A crash never looks like drift.

- 0 clean: no open drift at or above `audit.fail_on`.
- 1 drift: the job ran and found some. Only an audit (`audit`, `run`) ever says this.
- 2 something the operator must fix before running again: usage, configuration, a file that cannot be
  read, the machine refusing a write (disk full). One line on stderr says what.
- 3 incomplete: a source could not be pulled, an alert or a repair push not delivered. What did arrive
  is stored, audited and reported.
- 70 internal error (EX_SOFTWARE, a bug): one line on stderr says where the full traceback was written.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    CLEAN = 0
    DRIFT = 1
    USER_ERROR = 2
    INCOMPLETE = 3
    INTERNAL_ERROR = 70
