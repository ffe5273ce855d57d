"""The state folder shared by the hub and the resolver (docs/netfilter.md).

No Django here: the resolver imports this module too.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

POLICY = "policy.json"
STATUS = "status.json"
LISTS = "lists"
COMPILED = "compiled"
LOG = "log"
FORMAT = 1


def ensure(state_dir: Path) -> Path:
    state_dir = Path(state_dir)
    for sub in (LISTS, COMPILED, LOG):
        (state_dir / sub).mkdir(parents=True, exist_ok=True)
    return state_dir


def write_with(path: Path, write, *, durable: bool = True, suffix: str = "") -> None:
    """Write through `write(handle)` to a temporary file beside `path`, then rename it
    over `path`: a reader sees the old file or the new one, never a part.

    `durable=False` skips the fsync: for files that are rewritten every few
    seconds and worthless after a crash (the resolver's status), where an
    fsync on a busy disk would stall the resolver's loop."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_atomic(path: Path, data: bytes, *, durable: bool = True) -> None:
    write_with(path, lambda handle: handle.write(data), durable=durable)


def write_json(path: Path, data: dict, *, durable: bool = True) -> None:
    write_atomic(path, json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode(), durable=durable)


def read_json(path: Path) -> dict | None:
    try:
        with open(path, "rb") as handle:
            return json.loads(handle.read())
    except FileNotFoundError:
        return None


def stamp(path: Path) -> tuple[int, int, int] | None:
    """What changes when the file is replaced: inode, size, modification time."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)
