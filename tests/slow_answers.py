"""Timeouts for the tests that make a simulator answer late.

The client's timeout applies to every request of such a test, not only the delayed one, so it must be long
enough for an ordinary answer on a busy machine (at a load average of 11-16 a page of 100 profiles took over
0.3 s five attempts running), and the late answer must come well after it.
"""

CLIENT_TIMEOUT = 1.5  # seconds the client waits for an answer in these tests
LATE_ANSWER = 4.0  # seconds a simulator's `timeouts` fault holds its answer back
