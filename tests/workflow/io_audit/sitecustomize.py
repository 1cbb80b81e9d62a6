"""Record which files a workflow job's Python process opens (test support, not package code).

Put this folder on PYTHONPATH and set ``SCICLR_IO_AUDIT`` to a folder: every Python process then
appends to ``<folder>/<pid>.jsonl`` a first line ``{"argv", "stdout"}`` (``stdout`` is where the
process writes, i.e. the Snakemake rule's log file) and one line per file it opens or renames
into place (``{"path", "write"}``), through Python's audit hooks (PEP 578): ``open``/``os.open``
and ``os.rename``/``os.replace``. Files opened by native code (pyarrow's parquet I/O) are not
seen. ``tests/workflow/test_declared_io.py`` compares the records with the rules' declarations.
"""

import json
import os
import sys

_DIR = os.environ.get("SCICLR_IO_AUDIT")

if _DIR:
    _LOG = os.path.join(_DIR, f"{os.getpid()}.jsonl")
    _WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
    _busy = False

    def _emit(record):
        global _busy
        if _busy:
            return
        _busy = True
        try:
            with open(_LOG, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")
        finally:
            _busy = False

    try:
        _stdout = os.readlink("/proc/self/fd/1")
    except OSError:
        _stdout = ""
    _emit({"argv": sys.argv, "stdout": os.path.abspath(_stdout) if _stdout else ""})

    def _hook(event, args):
        if _busy:
            return
        if event == "open":
            path, mode, flags = args
            if not isinstance(path, (str, bytes, os.PathLike)):
                return
            write = bool(mode and any(c in str(mode) for c in "wax+")) or bool(
                isinstance(flags, int) and flags & _WRITE_FLAGS
            )
            _emit({"path": os.path.abspath(os.fsdecode(path)), "write": write})
        elif event == "os.rename":
            _emit({"path": os.path.abspath(os.fsdecode(args[1])), "write": True})

    sys.addaudithook(_hook)
