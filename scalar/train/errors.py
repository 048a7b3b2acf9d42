"""One error path for the command-line tools: a user mistake is one line on stderr.

``run_guarded(fn, *args)`` calls ``fn`` and turns the mistakes a user can make into one
``error: ...`` line and an exit code (no traceback):

* 2 (usage): a bad config value or override, a checkpoint that is missing, empty,
  truncated or not a checkpoint, a run that cannot be resumed, an output folder that
  cannot be created;
* 1 (data / run): a malformed annotation file, a run stopped by non-finite losses or
  weights, a full disk, a failed write;
* 143 / 130: the run was stopped by SIGTERM / SIGINT after saving ``last.ckpt``
  (128 + the signal number, as a shell reports a process killed by it).

Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import signal
import sys
from collections.abc import Callable
from typing import Any

from scalar.core.errors import DataError, UserError

EXIT_DATA = 1
EXIT_USAGE = 2
EXIT_SIGINT = 128 + int(signal.SIGINT)  # 130
EXIT_SIGTERM = 128 + int(signal.SIGTERM)  # 143


def _oserror_line(err: OSError) -> tuple[str, int]:
    where = f": {err.filename}" if getattr(err, "filename", None) else ""
    if err.errno == errno.ENOSPC:
        return f"no space left on device{where}", EXIT_DATA
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write{where} ({err.strerror})", EXIT_USAGE
    return f"{err.strerror or err}{where}", EXIT_DATA


def classify(err: BaseException) -> tuple[str, int] | None:
    """``(message, exit code)`` for an error a user can cause, ``None`` for a bug."""
    from hydra.errors import InstantiationException
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from scalar.data.scene import AnnotationError
    from scalar.stages.nan_guard import NonFiniteLossError

    if isinstance(err, InstantiationException) and err.__cause__ is not None:
        return classify(err.__cause__)  # a user mistake raised while building a config object
    if isinstance(err, SIGTERMException):
        from scalar.train.interrupt import received_signal

        signum = received_signal() or signal.SIGTERM
        name = signal.Signals(signum).name
        code = 128 + int(signum)
        return f"stopped by {name} (exit {code}); resume with ckpt_path=last", code
    if isinstance(err, UserError | FileNotFoundError):
        return str(err), EXIT_USAGE
    if isinstance(err, AnnotationError | NonFiniteLossError | DataError):
        return str(err), EXIT_DATA
    if isinstance(err, OSError):
        return _oserror_line(err)
    return None


def run_guarded(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``; user mistakes become one stderr line and ``SystemExit``."""
    try:
        return fn(*args, **kwargs)
    except BaseException as err:  # noqa: BLE001 - classified below, bugs re-raised
        if isinstance(err, SystemExit) and type(err) is SystemExit:
            raise
        found = classify(err)
        if found is None:
            raise
        message, code = found
        first = " ".join(str(message).split("\n")[0].split()) or type(err).__name__
        print(f"error: {first}", file=sys.stderr)
        raise SystemExit(code) from None
