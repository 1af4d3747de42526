"""Run a process that the kernel stops from writing past a size: RLIMIT_FSIZE makes every write beyond
`max_bytes` fail with EFBIG, the way a full disk fails one with ENOSPC. Unprivileged and real: the write
reaches the kernel and is refused there, whatever library issued it."""

from __future__ import annotations

import resource
import signal
from collections.abc import Callable


def file_size_limit(max_bytes: int) -> Callable[[], None]:
    """A `preexec_fn` for subprocess: limit the child's file size. SIGXFSZ is ignored (and stays ignored
    across exec), so the write returns an error instead of killing the process."""

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))

    return limit
