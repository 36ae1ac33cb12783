"""What a running `make run` tells the developer's other tools: the store URLs its services use (and
their JWT secret, for `payctl token`), in `<data dir>/devrun.json`.

Written once the stores are up, removed when devrun exits; a file left by a devrun that was killed
names a process that no longer exists and is ignored. The file is readable by its owner only.
`payctl` reads it when `REDIS_URL` / `DATABASE_URL` / `JWT_SECRET` are unset (the environment wins).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import orjson

DATA_DIR_VARIABLE = "PAYSTREAM_DATA_DIR"
DEFAULT_DATA_DIR = ".data"
STATE_FILE = "devrun.json"


@dataclass(frozen=True, slots=True)
class DevRunState:
    redis_url: str
    database_url: str
    jwt_secret: str | None
    pid: int
    # Where it was read from (not part of the file).
    path: Path | None = None


def write_state(data_dir: Path, state: DevRunState) -> Path:
    """Replace the file atomically (a reader never sees half of it); returns its path."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / STATE_FILE
    body = {
        "redis_url": state.redis_url,
        "database_url": state.database_url,
        "jwt_secret": state.jwt_secret,
        "pid": state.pid,
    }
    scratch = path.with_name(f".{STATE_FILE}.{os.getpid()}")
    descriptor = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(orjson.dumps(body, option=orjson.OPT_INDENT_2))
    os.replace(scratch, path)
    return path


def remove_state(path: Path, pid: int) -> None:
    """Remove the file if it is still this devrun's (another may have started since)."""
    state = read_state(path)
    if state is not None and state.pid == pid:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def read_state(path: Path) -> DevRunState | None:
    """The file's contents; None when it is missing or malformed."""
    try:
        body = orjson.loads(path.read_bytes())
        secret = body.get("jwt_secret")
        return DevRunState(
            redis_url=str(body["redis_url"]),
            database_url=str(body["database_url"]),
            jwt_secret=str(secret) if secret else None,
            pid=int(body["pid"]),
            path=path,
        )
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        return None


def find_state(environ: Mapping[str, str], cwd: Path | None = None) -> DevRunState | None:
    """The state of a devrun that is running now: in `$PAYSTREAM_DATA_DIR` when set, else in the
    nearest `.data/` of the working directory or one of its parents."""
    configured = environ.get(DATA_DIR_VARIABLE)
    start = (cwd or Path.cwd()).resolve()
    if configured:
        candidates = [(start / configured) / STATE_FILE]
    else:
        candidates = [directory / DEFAULT_DATA_DIR / STATE_FILE for directory in (start, *start.parents)]
    for candidate in candidates:
        state = read_state(candidate)
        if state is not None:
            return state if _running(state.pid) else None
    return None


def _running(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process, but a process
    return True
