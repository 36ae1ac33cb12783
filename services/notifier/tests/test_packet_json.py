"""The notifier's packet codec writes every packet so that it reads as the standard library's."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from notifier.packet_json import OrjsonPackets

# JSON values as the bus or a client may hand them over: any text (lone surrogates included), any
# integer (past 64 bits included), finite floats, nesting.
values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(values)
def test_what_it_encodes_reads_as_what_the_standard_library_encoded(value: Any) -> None:
    encoded = OrjsonPackets.dumps(value, separators=(",", ":"))
    assert OrjsonPackets.loads(encoded) == json.loads(json.dumps(value))
