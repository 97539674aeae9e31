"""``python -m qpr_pyserini.compat PYSERINI_MODULE [ARGS ...]``: a Pyserini module, offline and with Java 21."""

from __future__ import annotations

import runpy
import sys

from qpr_pyserini.compat import prepare_pyserini


def main(argv: list[str] | None = None) -> int:
    """Run a Pyserini module as ``python -m`` would, offline and with Java 21: compat MODULE [ARGS...]."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(
            "usage: python -m qpr_pyserini.compat PYSERINI_MODULE [ARGS ...]\n"
            "e.g.   python -m qpr_pyserini.compat pyserini.encode input --corpus ... output ... encoder ..."
        )
        return 0
    prepare_pyserini()
    sys.argv = [argv[0], *argv[1:]]
    runpy.run_module(argv[0], run_name="__main__", alter_sys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
