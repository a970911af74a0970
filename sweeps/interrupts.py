"""Whether a stop signal (Ctrl-C, SIGUSR1) is ending the running ``Tuner.fit`` — known in the driver.

Why a flag of our own: after Ctrl-C, Tune stops every live trial through the same
``on_trial_complete`` callback as a trial that ended by itself, and ``fit`` then returns normally
with every trial TERMINATED — the pending ones too (Ray 2.60). Read from Tune alone, an interrupted
trial looked FINISHED (``stop_reason=scheduler``) and a re-run of a grid skipped it with its epochs
cut short. `watch_stop_signals` (called by `sweeps.callbacks.StatusCallback.setup`, once Tune has
installed its handler) wraps Tune's handler: the first signal sets the flag, then Tune's handler
runs as before (it saves the state and puts back the previous handler, so a second Ctrl-C still
ends the driver at once). `fit_scope` puts the handlers back after ``fit`` so wrappers never stack.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any, Callable, Iterator

_stopping = threading.Event()
_SIGNALS = tuple(s for s in (getattr(signal, "SIGINT", None), getattr(signal, "SIGUSR1", None)) if s is not None)


def stopping() -> bool:
    """True once a stop signal reached the driver during the current ``fit``."""
    return _stopping.is_set()


def _watched(handler: Callable[..., Any]) -> Callable[..., Any]:
    def watched(sig: int, frame: Any) -> Any:
        _stopping.set()
        return handler(sig, frame)

    watched.mmsa_watch = True  # type: ignore[attr-defined]
    return watched


def watch_stop_signals() -> None:
    """Wrap the installed stop-signal handlers (Tune's, inside ``fit``) so that they set the flag."""
    _stopping.clear()
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set from the main thread (Tune then installs none)
    for sig in _SIGNALS:
        handler = signal.getsignal(sig)
        if callable(handler) and not getattr(handler, "mmsa_watch", False):
            signal.signal(sig, _watched(handler))


@contextlib.contextmanager
def fit_scope() -> Iterator[None]:
    """Around ``tuner.fit()``: a fresh flag, and the driver's own handlers back afterwards."""
    _stopping.clear()
    main = threading.current_thread() is threading.main_thread()
    saved = {sig: signal.getsignal(sig) for sig in _SIGNALS} if main else {}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            if handler is not None:
                signal.signal(sig, handler)
