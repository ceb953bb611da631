"""The acceptance service's answers as SMPP command_status values (CONTRACT.md, "SMPP server
(partners as ESMEs)")."""

from __future__ import annotations

from ..connectors.smpp.pdu import (
    ESME_RINVDSTADR,
    ESME_RINVMSGLEN,
    ESME_RINVSRCADR,
    ESME_ROK,
    ESME_RSUBMITFAIL,
    ESME_RSYSERR,
)
from ..domain.codes import Code

# The contract's values for these two: low credit and an opted-out number are answered with
# them so that an ESME can tell them from other refusals.
STATUS_LOW_CREDIT = 0x0000004B  # "ESME_RX_P_APPN" in CONTRACT.md
STATUS_OPTED_OUT = 0x0000004C  # "ESME_RX_R_APPN" in CONTRACT.md

_STATUS_OF_CODE = {
    Code.SUCCESS: ESME_ROK,
    Code.INVALID_SENDER_ID: ESME_RINVSRCADR,
    Code.INVALID_MOBILE: ESME_RINVDSTADR,
    Code.NETWORK_NOT_ALLOWED: ESME_RINVDSTADR,
    Code.LOW_CREDIT: STATUS_LOW_CREDIT,
    Code.RECIPIENT_OPTED_OUT: STATUS_OPTED_OUT,
    Code.UNSUPPORTED_DATA_TYPE: ESME_RINVMSGLEN,  # empty, too many parts, a NUL in the text
    Code.MESSAGE_SYSTEM_ERROR: ESME_RSYSERR,
    Code.TRY_AGAIN_LATER: ESME_RSYSERR,
}


def status_of(code: int) -> int:
    """The submit_sm_resp command_status for an acceptance answer code; ESME_RSUBMITFAIL for
    a refusal without a closer SMPP word (a partner suspended since it bound)."""
    try:
        return _STATUS_OF_CODE.get(Code(code), ESME_RSUBMITFAIL)
    except ValueError:
        return ESME_RSUBMITFAIL
