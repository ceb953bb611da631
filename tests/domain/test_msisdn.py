"""The number normaliser against libphonenumber itself, the independent oracle.

`NumberNormaliser` answers from a fast path for digit-only forms; these properties check that
it answers exactly what `phonenumbers.parse` + `number_type` answer, over generated numbers in
every form bulk lists contain, valid and invalid, for Kenya and for a multi-country table.
"""

from __future__ import annotations

import re

import phonenumbers
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from phonenumbers import carrier

from smsgw.domain.msisdn import _SLOW, NumberNormaliser

MOBILE = (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE)

KENYA = NumberNormaliser(["KE"], "KE")
EAST_AFRICA = NumberNormaliser(["KE", "UG", "TZ", "RW"], "KE")


def oracle(raw: str, served: set[str], default: str) -> str | None:
    """What libphonenumber says, with smsgw's extra rules: no letters in a number, and
    nothing that libphonenumber would skip before the first digit or after the last."""
    if any(ch.isalpha() for ch in raw):
        return None
    if not re.fullmatch(r"\+?\(?[0-9](?:[0-9 \-().\/]*[0-9])?", raw.strip()):
        return None
    try:
        number = phonenumbers.parse(raw, default)
    except phonenumbers.NumberParseException:
        return None
    if phonenumbers.region_code_for_number(number) not in served:
        return None
    if phonenumbers.number_type(number) not in MOBILE:
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:]


digits = st.text(alphabet="0123456789", min_size=0, max_size=14)
kenyan_national = st.builds(
    lambda lead, rest: lead + rest,
    st.sampled_from(["7", "1", "2", "4", "5", "6", "8", "9", "0"]),
    st.text(alphabet="0123456789", min_size=5, max_size=10),
)
forms = st.one_of(
    st.builds(lambda n: "0" + n, kenyan_national),
    st.builds(lambda n: "254" + n, kenyan_national),
    st.builds(lambda n: "+254" + n, kenyan_national),
    kenyan_national,
    st.builds(lambda n: "00" + n, digits),
    st.builds(lambda n: "000254" + n, kenyan_national),
    st.builds(lambda n: "+" + n, digits),
    st.builds(lambda cc, n: "+" + cc + n, st.sampled_from(["256", "255", "250", "1", "44", "7", "2540"]), digits),
    st.builds(lambda cc, n: cc + n, st.sampled_from(["256", "255", "250", "2540", "25407"]), digits),
    digits,
    st.builds(lambda n, sep: sep.join([n[:4], n[4:7], n[7:]]), st.builds(lambda n: "0" + n, kenyan_national), st.sampled_from([" ", "-", "."])),
    st.text(alphabet="0123456789+ -()abc", max_size=16),
)


@settings(max_examples=3000, deadline=None)
@given(forms)
@example("0712345678")
@example("254712345678")
@example("+254712345678")
@example("712345678")
@example("0110123456")
@example("2540712345678")
@example("+2540712345678")
@example("000254712345678")
@example("254254712345")
@example("07123456789")
@example("0747123456")
@example("0202222222")
def test_kenya_normalisation_equals_libphonenumber(raw: str):
    found = KENYA.normalise(raw)
    assert (found.digits if found else None) == oracle(raw, {"KE"}, "KE")


@settings(max_examples=2000, deadline=None)
@given(forms)
@example("+256772123456")
@example("+255712345678")
@example("0772123456")
def test_multi_country_table_equals_libphonenumber(raw: str):
    found = EAST_AFRICA.normalise(raw)
    assert (found.digits if found else None) == oracle(raw, {"KE", "UG", "TZ", "RW"}, "KE")
    if found is not None:
        assert found.region == phonenumbers.region_code_for_number(phonenumbers.parse("+" + found.digits))


@settings(max_examples=2000, deadline=None)
@given(st.builds(lambda lead, rest: "254" + lead + rest, st.sampled_from(["7", "1"]), st.text(alphabet="0123456789", min_size=8, max_size=8)))
def test_carrier_lookup_equals_libphonenumber(international: str):
    found = KENYA.normalise(international)
    if found is None:
        return
    expected = carrier.name_for_number(phonenumbers.parse("+" + international), "en")
    assert KENYA.carrier(found.digits) == expected


def test_fast_path_really_answers_the_common_forms():
    # The forms of a typical bulk list never fall back to phonenumbers.parse.
    for raw in ("0712345678", "254712345678", "+254712345678", "712345678", "0110123456", "0733123456"):
        assert KENYA._fast(raw) is not _SLOW, raw


@pytest.mark.parametrize(
    "raw",
    [
        "",
        " ",
        "+",
        "++254712345678",
        "0712345678x",
        "tel:+254712345678",
        "9" * 50,
        "-712345678",
        "-0712345678",
        "+-254712345678",
        ")0712345678",
        "0712345678-",
        "/254712345678",
    ],
)
def test_odd_inputs_are_invalid_not_errors(raw: str):
    assert KENYA.normalise(raw) is None
