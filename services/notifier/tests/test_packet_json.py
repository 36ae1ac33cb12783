"""The notifier's packet codec reads and writes every packet as the standard library would."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from notifier.packet_json import OrjsonPackets

# JSON values as a client or the bus may hand them over: any text (lone surrogates included), any
# integer (past 64 bits included), finite floats, nesting.
values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(values)
def test_what_it_encodes_decodes_to_what_the_standard_library_encoded(value: Any) -> None:
    encoded = OrjsonPackets.dumps(value, separators=(",", ":"))
    assert json.loads(encoded) == json.loads(json.dumps(value))
    assert OrjsonPackets.loads(encoded) == json.loads(encoded)


@given(st.text())
def test_any_text_decodes_as_the_standard_library_decodes_it_or_is_refused_alike(text: str) -> None:
    try:
        expected: Any = json.loads(text)
    except ValueError:
        try:
            OrjsonPackets.loads(text)
        except ValueError:
            return
        raise AssertionError(f"accepted what the standard library refuses: {text!r}") from None
    # Compared as text: NaN, which the standard library reads, is unequal to itself.
    assert json.dumps(OrjsonPackets.loads(text)) == json.dumps(expected)


def test_a_lone_surrogate_a_client_sends_escaped_still_arrives() -> None:
    assert OrjsonPackets.loads('["subscribe:payment-events",{"invoiceId":"ord_\\udcff"}]') == [
        "subscribe:payment-events",
        {"invoiceId": "ord_\udcff"},
    ]
