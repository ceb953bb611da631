"""Mobile number normalisation with libphonenumber's data.

`NumberNormaliser.normalise` answers what `phonenumbers.parse` + `number_type` would answer
(a valid MOBILE or FIXED_LINE_OR_MOBILE number of a served region, in international digits),
but takes a fast path for the forms bulk traffic is made of: digits only, as `+CC…`, `CC…`,
`0…` or the bare national number. The fast path uses the same metadata and the same
type rules as libphonenumber, and hands anything it is not certain about to
`phonenumbers.parse`; tests/domain/test_msisdn.py checks the two agree.

Letters are refused outright: libphonenumber would read `0712 CALL ME` as a vanity number,
but in a bulk list letters mean a broken cell, not a number to charge for.
"""

from __future__ import annotations

import re
from typing import NamedTuple

import phonenumbers
from phonenumbers import PhoneMetadata, PhoneNumberType
from phonenumbers.carrierdata import CARRIER_DATA

# Digits with the characters people put between them; anything else, and anything before the
# first digit or after the last that libphonenumber would skip ("-712345678"), makes it invalid.
_FORMATTING = re.compile(r"\+?\(?[0-9](?:[0-9 \-().\/]*[0-9])?")
_MOBILE_TYPES = (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE)
# The order in which libphonenumber tests the special number types before fixed/mobile.
_SPECIAL_DESCS = (
    "premium_rate",
    "toll_free",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
)
MAX_INPUT_LENGTH = 40


class Msisdn(NamedTuple):
    digits: str  # international form without '+', e.g. 254712345678
    region: str  # ISO 3166 region, e.g. KE


class _Desc:
    """One PhoneNumberDesc: possible lengths and a whole-string pattern."""

    __slots__ = ("lengths", "pattern", "source")

    def __init__(self, desc) -> None:
        self.lengths = tuple(sorted(desc.possible_length or ()))
        self.source = desc.national_number_pattern
        self.pattern = re.compile(self.source) if self.source else None

    def matches(self, national: str) -> bool:
        if self.lengths and len(national) not in self.lengths:
            return False
        return self.pattern is not None and self.pattern.fullmatch(national) is not None

    def whole_match_regex(self) -> str | None:
        """The same test as `matches`, as regex text for a lookahead at position 0."""
        if self.source is None:
            return None
        length_check = ""
        if self.lengths:
            length_check = "(?=(?:" + "|".join(f"[0-9]{{{n}}}" for n in self.lengths) + r")\Z)"
        return f"{length_check}(?:{self.source})\\Z"


class _RegionPlan:
    """What the fast path needs of one region's metadata."""

    def __init__(self, region: str) -> None:
        meta = PhoneMetadata.metadata_for_region(region)
        if meta is None:
            raise ValueError(f"unknown region {region!r}")
        self.region = region
        self.country_code = str(meta.country_code)
        self.national_prefix = meta.national_prefix or ""
        self.general = _Desc(meta.general_desc)
        self.general_test = re.compile(self.general.whole_match_regex() or "(?!)")
        self.general_max_length = max((meta.general_desc.possible_length if meta.general_desc is not None else None) or (0,))
        self.specials = [_Desc(d) for d in (getattr(meta, name) for name in _SPECIAL_DESCS) if d is not None]
        self.fixed = _Desc(meta.fixed_line) if meta.fixed_line is not None else None
        self.mobile = _Desc(meta.mobile) if meta.mobile is not None else None
        self.same_mobile_and_fixed = bool(meta.same_mobile_and_fixed_line_pattern)
        self.mobile_lengths = frozenset(meta.mobile.possible_length or ()) if meta.mobile is not None else frozenset()
        self.idd = re.compile(meta.international_prefix) if meta.international_prefix else None
        # The fast path only knows the plain national-prefix rule and regions that own their
        # calling code alone; every other region always goes through phonenumbers.parse.
        simple_prefix = meta.national_prefix_for_parsing in (None, meta.national_prefix) and not meta.national_prefix_transform_rule
        sole_owner = meta.country_code is not None and phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(meta.country_code, ()) == (region,)
        self.fast = simple_prefix and sole_owner and self.mobile is not None

        self.mobile_test = self._compile_mobile_test()

    def _compile_mobile_test(self) -> re.Pattern[str]:
        """libphonenumber's number-type decision for "is it MOBILE or FIXED_LINE_OR_MOBILE",
        folded into one regex so that a number costs one C call instead of one per type.

        libphonenumber answers: unknown unless the general pattern matches; a special type
        (premium, toll-free, ...) if one matches; otherwise, when fixed-line and mobile share
        a pattern, FIXED_LINE_OR_MOBILE iff fixed-line matches, else MOBILE or
        FIXED_LINE_OR_MOBILE iff the mobile pattern matches.
        """
        never = "(?!)"
        general = self.general.whole_match_regex() or never
        parts = [f"(?={general})"]
        for desc in self.specials:
            special = desc.whole_match_regex()
            if special is not None:
                parts.append(f"(?!{special})")
        deciding = self.fixed if self.same_mobile_and_fixed else self.mobile
        decided = deciding.whole_match_regex() if deciding is not None else None
        parts.append(f"(?={decided or never})")
        return re.compile("".join(parts))

    def is_mobile(self, national: str) -> bool:
        return self.mobile_test.match(national) is not None


_SLOW = object()


class NumberNormaliser:
    def __init__(self, served_regions: list[str] | tuple[str, ...], default_region: str) -> None:
        if default_region not in served_regions:
            raise ValueError(f"default region {default_region} is not among the served regions {served_regions}")
        self.default_region = default_region
        self.served = frozenset(served_regions)
        self._plans = {region: _RegionPlan(region) for region in served_regions}
        self._by_country_code = {plan.country_code: plan for plan in self._plans.values()}
        self._default = self._plans[default_region]
        self._carriers = _carrier_prefixes({plan.country_code for plan in self._plans.values()})
        self._carrier_prefix_lengths = sorted({len(p) for p in self._carriers}, reverse=True)

    def carrier_prefixes(self) -> dict[str, str]:
        """libphonenumber's carrier prefixes (international digits) of the served regions."""
        return dict(self._carriers)

    def region_of_prefix(self, prefix: str) -> str | None:
        for length in (1, 2, 3):
            plan = self._by_country_code.get(prefix[:length])
            if plan is not None:
                return plan.region
        return None

    def normalise(self, raw: str) -> Msisdn | None:
        """The number in international digits if it is a valid mobile number of a served
        region, else None."""
        result = self._fast(raw)
        if result is _SLOW:
            return self._slow(raw)
        return result  # type: ignore[return-value]

    def carrier(self, digits: str) -> str:
        """libphonenumber's original carrier name (English) for international digits."""
        for length in self._carrier_prefix_lengths:
            name = self._carriers.get(digits[:length])
            if name is not None:
                return name
        return ""

    def _fast(self, raw: str) -> Msisdn | object | None:
        text = raw.strip()
        if text.startswith("+"):
            digits = text[1:]
            if not (digits.isascii() and digits.isdigit()):
                return _SLOW
            for length in (1, 2, 3):
                plan = self._by_country_code.get(digits[:length])
                if plan is not None:
                    break
            else:
                # Calling codes are prefix-free: a number of no served country is invalid here.
                return None
            national = digits[len(plan.country_code) :]
            if not plan.fast or not national or national.startswith("0"):
                return _SLOW
            return Msisdn(plan.country_code + national, plan.region) if plan.mobile_test.match(national) else None

        if not (text.isascii() and text.isdigit()):
            return _SLOW
        plan = self._default
        if not plan.fast or (plan.idd is not None and plan.idd.match(text)):
            return _SLOW
        code = plan.country_code
        prefix = plan.national_prefix
        if text.startswith(code):
            national = text[len(code) :]
            # libphonenumber strips a leading country code when the whole is too long to be
            # national; shorter cases depend on pattern matches and go the slow way.
            if len(text) > plan.general_max_length and len(national) in plan.mobile_lengths and not (prefix and national.startswith(prefix)):
                return Msisdn(plan.country_code + national, plan.region) if plan.mobile_test.match(national) else None
            return _SLOW
        if prefix and text.startswith(prefix):
            national = text[len(prefix) :]
            if len(national) not in plan.mobile_lengths or national.startswith(prefix):
                return _SLOW
            if plan.general_test.match(text) and not plan.general_test.match(national):
                return _SLOW
            return Msisdn(plan.country_code + national, plan.region) if plan.mobile_test.match(national) else None
        if len(text) in plan.mobile_lengths:
            return Msisdn(plan.country_code + text, plan.region) if plan.mobile_test.match(text) else None
        return _SLOW

    def _slow(self, raw: str) -> Msisdn | None:
        text = raw.strip()
        if len(text) > MAX_INPUT_LENGTH or not _FORMATTING.fullmatch(text):
            return None
        try:
            number = phonenumbers.parse(text, self.default_region)
        except phonenumbers.NumberParseException:
            return None
        region = phonenumbers.region_code_for_number(number)
        if region not in self.served:
            return None
        if phonenumbers.number_type(number) not in _MOBILE_TYPES:
            return None
        return Msisdn(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:], region)


def _carrier_prefixes(country_codes: set[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for prefix, names in CARRIER_DATA.items():
        if any(prefix.startswith(code) for code in country_codes):
            name = names.get("en")
            if name is not None:
                out[prefix] = name
    return out
