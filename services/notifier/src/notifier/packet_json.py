"""The JSON codec of this process's Socket.IO and Engine.IO packets (python-socketio's `json`
option): orjson encodes, the standard library decodes.

Every live event becomes a packet or two per socket, each encoded on the event loop: with the
standard library's encoder a `payment:completed` packet costs about 38 µs, with orjson about 28
(the rest is python-socketio's own walk over the data). What orjson refuses to encode (a string with
a lone surrogate, an integer past 64 bits) goes to the standard library instead. Decoding, which
only what clients send needs (a subscribe now and then), stays with the standard library: orjson
would read an integer past 64 bits as a float, so a packet would no longer read as it did.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


class OrjsonPackets:
    """A module-like codec: python-socketio calls `dumps(data, separators=...)` and `loads(text)`."""

    @staticmethod
    def dumps(value: Any, **options: Any) -> str:
        try:
            return orjson.dumps(value).decode()
        except TypeError:
            return json.dumps(value, **options)

    @staticmethod
    def loads(text: str | bytes, **options: Any) -> Any:
        return json.loads(text, **options)
