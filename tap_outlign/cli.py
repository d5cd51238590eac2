"""The `tap-outlign` command: the SDK's Singer CLI, with failures reported in one line."""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

from singer_sdk.exceptions import ConfigValidationError

from tap_outlign.errors import OutlignError
from tap_outlign.tap import TapOutlign

if TYPE_CHECKING:
    from collections.abc import Callable

LOGGER = logging.getLogger("tap-outlign")


def run_reporting_errors(command: Callable[[], object], prog: str = "tap-outlign") -> None:
    """Run a click command; known failures become one line on stderr and exit status 1.

    Tracebacks are for bugs: they are logged only at DEBUG level.
    """
    try:
        command()
    except OutlignError as exc:
        _fail(prog, str(exc), exc)
    except ConfigValidationError as exc:
        _fail(prog, f"invalid settings: {'; '.join(exc.errors)}", exc)
    except KeyboardInterrupt:
        _fail(prog, "interrupted", None)
    except Exception as exc:  # noqa: BLE001 - the last line of defence for the user
        detail = f"unexpected {type(exc).__name__}: {exc} (run with LOGLEVEL=DEBUG for details)"
        _fail(prog, detail, exc)


def _fail(prog: str, message: str, exc: BaseException | None) -> None:
    sys.stdout.flush()
    if exc is not None:
        LOGGER.debug("traceback", exc_info=exc)
    sys.stderr.write(f"{prog}: error: {message}\n")
    sys.exit(1)


def main() -> None:
    """Console entry point for `tap-outlign`."""
    run_reporting_errors(TapOutlign.cli)
