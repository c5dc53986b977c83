"""``python -m sandbox.images build CONTEXT TAG``: the job image on the engine the ``docker`` CLI reaches.

Exit 0 when the image is there (built or reused), 2 with the error and its fix otherwise. The local
backend runs it as its ``job-image`` step, with the output in ``logs/job-image.log``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sandbox.errors import SandboxError
from sandbox.images.build import ensure_job_image
from sandbox.images.engine import check


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.images")
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build CONTEXT/Dockerfile as TAG unless the engine has TAG")
    build.add_argument("context", type=Path)
    build.add_argument("tag")
    args = parser.parse_args(argv)
    try:
        engine = check("Building the job image needs Docker")
        result = ensure_job_image(engine.docker, args.context, args.tag)
    except SandboxError as exc:
        print(f"error: {exc.render()}", file=sys.stderr, flush=True)
        return 2
    if not result.built:
        print(f"{result.tag} is already on the engine" + (f" ({result.stand_in})" if result.stand_in else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
