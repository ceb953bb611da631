"""GSM-7 / UCS-2 part counting against the `gsm0338` codec as the independent oracle."""

from __future__ import annotations

import gsm0338  # noqa: F401  (registers the "gsm03.38" codec)
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsgw.domain.encoding import GSM_BASIC, GSM_EXTENSION, Encoding, count_parts, decode, encode, encoding_of, split

GSM_CHARS = [c for c in GSM_BASIC if c != "\x1b"] + list(GSM_EXTENSION)
gsm_text = st.text(alphabet=st.sampled_from(GSM_CHARS), min_size=1, max_size=700)
extension_heavy = st.text(alphabet=st.sampled_from(["a", "€", "{", "|", "^"]), min_size=1, max_size=700)
any_text = st.text(min_size=1, max_size=500)
astral_heavy = st.text(alphabet=st.sampled_from(["a", "ж", "😀", "𝄞"]), min_size=1, max_size=300)
texts = st.one_of(gsm_text, extension_heavy, any_text, astral_heavy)


def oracle_encoding(text: str) -> Encoding:
    # The codec maps a lone ESC to 0x1B, but on the wire 0x1B escapes the next character:
    # smsgw sends such a text as UCS-2 so that it arrives as written.
    if "\x1b" in text:
        return Encoding.UCS2
    try:
        text.encode("gsm03.38")
    except UnicodeEncodeError:
        return Encoding.UCS2
    return Encoding.GSM7


def oracle_units(text: str, encoding: Encoding) -> int:
    if encoding is Encoding.GSM7:
        return len(text.encode("gsm03.38"))
    return len(text.encode("utf-16-be")) // 2


@settings(max_examples=1500, deadline=None)
@given(texts)
def test_encoding_and_units_agree_with_the_codec(text: str):
    encoding = encoding_of(text)
    assert encoding is oracle_encoding(text)
    if encoding is Encoding.GSM7:
        assert encode(text, encoding) == text.encode("gsm03.38")
    else:
        assert encode(text, encoding) == text.encode("utf-16-be")


@settings(max_examples=1500, deadline=None)
@given(texts)
def test_parts_are_as_few_as_the_limits_allow_and_never_split_a_character(text: str):
    encoding, parts = count_parts(text)
    pieces = split(text)
    assert parts == len(pieces)
    assert "".join(pieces) == text
    single, multi = (160, 153) if encoding is Encoding.GSM7 else (70, 67)
    total = oracle_units(text, encoding)
    if total <= single:
        assert pieces == [text]
        return
    for index, piece in enumerate(pieces):
        size = oracle_units(piece, encoding)
        assert 0 < size <= multi
        if index + 1 < len(pieces):
            # Greedy: the next character would not have fitted.
            assert size + oracle_units(pieces[index + 1][0], encoding) > multi
    # No split ever lands inside an escape sequence or a surrogate pair (each piece encodes alone).
    assert sum(oracle_units(p, encoding) for p in pieces) == total


@pytest.mark.parametrize(
    "text,encoding,parts",
    [
        ("a" * 160, Encoding.GSM7, 1),
        ("a" * 161, Encoding.GSM7, 2),
        ("a" * 306, Encoding.GSM7, 2),
        ("a" * 307, Encoding.GSM7, 3),
        ("€" * 80, Encoding.GSM7, 1),
        ("€" * 81, Encoding.GSM7, 2),
        ("a" * 152 + "€" + "a" * 10, Encoding.GSM7, 2),  # the escape pair moves whole to part 2
        ("a" * 152 + "€" + "a" * 152, Encoding.GSM7, 3),
        ("ж" * 70, Encoding.UCS2, 1),
        ("ж" * 71, Encoding.UCS2, 2),
        ("ж" * 134, Encoding.UCS2, 2),
        ("ж" * 135, Encoding.UCS2, 3),
        ("😀" * 35, Encoding.UCS2, 1),
        ("😀" * 36, Encoding.UCS2, 2),
        ("a" * 66 + "😀" + "ж" * 66, Encoding.UCS2, 3),
        ("`", Encoding.UCS2, 1),  # the backtick is not in the GSM alphabet
        ("Ç", Encoding.GSM7, 1),
        ("ç", Encoding.UCS2, 1),
    ],
)
def test_known_boundaries(text: str, encoding: Encoding, parts: int):
    assert count_parts(text) == (encoding, parts)


@settings(max_examples=500, deadline=None)
@given(gsm_text)
def test_gsm_decode_inverts_encode(text: str):
    assert decode(encode(text, Encoding.GSM7), 0) == text


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.sampled_from([0, 1, 3, 8, 4, 240]))
def test_decode_never_raises_on_peer_bytes(data: bytes, data_coding: int):
    assert isinstance(decode(data, data_coding), str)
