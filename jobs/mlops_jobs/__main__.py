"""Dispatch: ``python -m mlops_jobs <step>``; exit codes in ``mlops_jobs.exitcodes`` (2 a usage or
configuration error, 1 a failed step, 3 a failed quality gate)."""

from __future__ import annotations

import contextlib
import importlib
import sys
import time
from pathlib import Path

from mlops_jobs import exitcodes, outage
from mlops_jobs.config import ConfigError, GateFailed, JobFailed

STEPS = ("preprocess", "train", "evaluate")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in STEPS:
        print(f"usage: python -m mlops_jobs {{{'|'.join(STEPS)}}}", file=sys.stderr)
        return exitcodes.CONFIG_ERROR
    step = args[0]
    started = time.monotonic()
    try:
        importlib.import_module(f"mlops_jobs.{step}").run()
    except ConfigError as exc:
        print(f"mlops_jobs {step}: configuration error: {exc}", file=sys.stderr)
        return exitcodes.CONFIG_ERROR
    except GateFailed as exc:
        print(f"mlops_jobs {step}: {exc}", file=sys.stderr)
        termination_message(str(exc))
        return exitcodes.GATE_FAILED
    except JobFailed as exc:
        print(f"mlops_jobs {step}: {exc}", file=sys.stderr)
        return exitcodes.FAILED
    except Exception as exc:
        why = outage.explain(exc)
        if why is None:
            raise
        # The traceback first (for whoever debugs the client), the one line that says it all last.
        import traceback

        traceback.print_exc()
        print(f"mlops_jobs {step}: {why}", file=sys.stderr)
        return exitcodes.FAILED
    print(f"mlops_jobs {step}: done in {time.monotonic() - started:.1f}s", file=sys.stderr)
    return exitcodes.OK


TERMINATION_LOG = Path("/dev/termination-log")


def termination_message(text: str, path: Path = TERMINATION_LOG) -> None:
    """In a pod, the kubelet keeps this file's text as the container's termination message (the
    operator shows it); elsewhere the file does not exist and nothing is written."""
    if path.exists():
        with contextlib.suppress(OSError):
            path.write_text(text[:4096])  # the kubelet keeps at most 4096 bytes


if __name__ == "__main__":
    sys.exit(main())
