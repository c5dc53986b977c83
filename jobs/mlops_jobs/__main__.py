"""Dispatch: ``python -m mlops_jobs <step>``; exit 2 on a usage/config error, 1 on a failed step."""

from __future__ import annotations

import importlib
import sys
import time

from mlops_jobs import outage
from mlops_jobs.config import ConfigError, JobFailed

STEPS = ("preprocess", "train", "evaluate")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in STEPS:
        print(f"usage: python -m mlops_jobs {{{'|'.join(STEPS)}}}", file=sys.stderr)
        return 2
    step = args[0]
    started = time.monotonic()
    try:
        importlib.import_module(f"mlops_jobs.{step}").run()
    except ConfigError as exc:
        print(f"mlops_jobs {step}: configuration error: {exc}", file=sys.stderr)
        return 2
    except JobFailed as exc:
        print(f"mlops_jobs {step}: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        why = outage.explain(exc)
        if why is None:
            raise
        # The traceback first (for whoever debugs the client), the one line that says it all last.
        import traceback

        traceback.print_exc()
        print(f"mlops_jobs {step}: {why}", file=sys.stderr)
        return 1
    print(f"mlops_jobs {step}: done in {time.monotonic() - started:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
