"""The stop-signal flag that tells an interrupted trial from one that ended (sweeps.interrupts)."""

from __future__ import annotations

import os
import signal

from sweeps import interrupts


def test_a_wrapped_handler_sets_the_flag_then_runs_and_fit_scope_puts_the_handler_back():
    seen = []
    before = signal.getsignal(signal.SIGINT)

    def tune_like(sig, frame):  # what Tune installs inside fit: remember, then put the original back
        seen.append(sig)
        signal.signal(signal.SIGINT, before)

    with interrupts.fit_scope():
        signal.signal(signal.SIGINT, tune_like)
        interrupts.watch_stop_signals()
        interrupts.watch_stop_signals()  # a second setup (restore) does not wrap twice
        assert not interrupts.stopping()
        os.kill(os.getpid(), signal.SIGINT)
        assert seen == [signal.SIGINT] and interrupts.stopping()
        assert signal.getsignal(signal.SIGINT) is before  # Tune's own restore still happens
    assert interrupts.stopping()  # read after fit returns
    assert signal.getsignal(signal.SIGINT) is before
    with interrupts.fit_scope():
        assert not interrupts.stopping()  # every fit starts clear


def test_fit_scope_removes_the_wrapper_of_a_fit_that_ended_normally():
    before = signal.getsignal(signal.SIGINT)
    with interrupts.fit_scope():
        signal.signal(signal.SIGINT, lambda s, f: None)  # Tune leaves its handler installed
        interrupts.watch_stop_signals()
        assert getattr(signal.getsignal(signal.SIGINT), "mmsa_watch", False)
    assert signal.getsignal(signal.SIGINT) is before and not interrupts.stopping()
