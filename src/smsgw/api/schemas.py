"""Shapes of requests and answers, for the OpenAPI document at /docs.

The routes do not validate with these models (one bad entry must get its own code, not a
422 for the batch); they describe what the routes read and write, and
tests/api/test_openapi.py checks real answers against them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

IdLike = str | int


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="allow")


class SmsEntry(_Model):
    partnerID: IdLike = Field(description="Partner id; only the first entry's value is used.")
    apikey: str = Field(description="API key (plain), or base64 of it with pass_type bm5.")
    pass_type: Literal["plain", "bm5"] | None = Field(None, description="How apikey is sent; plain when absent.")
    clientsmsid: IdLike | None = Field(None, description="Your own id, echoed with the type it came in.")
    mobile: IdLike = Field(description="Recipient: 0712345678, 254712345678 or +254712345678.")
    message: str = Field(description="Text; GSM-7 or UCS-2, up to the configured number of parts (6).")
    shortcode: IdLike = Field(description="Sender id; must belong to the partner (case-sensitive).")
    timeToSend: IdLike | None = Field(None, description="Unix seconds or 'YYYY-MM-DD HH:MM[:SS]' (gateway time zone).")


class LaterSmsEntry(SmsEntry):
    """An entry after the first: its credentials and shortcode, if any, are ignored."""

    partnerID: IdLike | None = Field(None, description="Ignored: the first entry's applies.")  # type: ignore[assignment]
    apikey: str | None = Field(None, description="Ignored: the first entry's applies.")  # type: ignore[assignment]
    shortcode: IdLike | None = Field(None, description="Ignored: the first entry's applies.")  # type: ignore[assignment]


class SendBulkRequest(_Model):
    count: IdLike | None = Field(None, description="Must equal the length of smslist when present.")
    # component_schemas() makes the first item a SmsEntry and the others LaterSmsEntry.
    smslist: list[SmsEntry] = Field(
        min_length=1,
        max_length=1000,
        description="The first entry carries partnerID, apikey and shortcode for all; later entries need only mobile and message.",
    )


class MessageResult(_Model):
    response_code: int = Field(alias="response-code", description="200, or 1002/1003/1004/1005/1009 for this entry.")
    response_description: str = Field(alias="response-description")
    mobile: Any = Field(description="Normalised number on success (string in sendbulk, number in sendsms); as sent on failure.")
    messageid: str | None = Field(None, description="Digits; present on success.")
    clientsmsid: IdLike | None = None
    networkid: int | None = Field(None, description="Network id of the number; present on success.")


class SendResponse(_Model):
    responses: list[MessageResult]


class ErrorResponse(BaseModel):
    """A request-level error (a bare answer): never has the fields of a success."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")
    response_code: int = Field(alias="response-code", description="The contract's code (never 200).", json_schema_extra={"not": {"const": 200}})
    response_description: str = Field(alias="response-description")
    respose_code: int | None = Field(None, alias="respose-code", description="The legacy misspelling, when SMSGW_LEGACY_RESPOSE_CODE is on.")


class HealthStatus(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: str = Field(description="ok / live / ready, or what is wrong.")
    problems: list[str] | None = Field(None, description="Why the process is not ready.")


class SendSmsRequest(_Model):
    partnerID: IdLike
    apikey: str
    pass_type: Literal["plain", "bm5"] | None = None
    mobile: IdLike = Field(description="One number, or up to 1000 separated by commas.")
    message: str
    shortcode: IdLike
    clientsmsid: IdLike | None = None
    timeToSend: IdLike | None = None


class CredentialsRequest(_Model):
    partnerID: IdLike
    apikey: str
    pass_type: Literal["plain", "bm5"] | None = None


class BalanceResponse(_Model):
    response_code: int = Field(alias="response-code")
    response_description: str = Field(alias="response-description")
    credit: str = Field(description="Balance in units with two decimals, e.g. '545.00'.")
    partner_id: str = Field(alias="partner-id")


class DlrRequest(CredentialsRequest):
    messageID: IdLike


class DlrResponse(_Model):
    response_code: int = Field(alias="response-code")
    response_description: str = Field(alias="response-description")
    message_id: str = Field(alias="message-id")
    delivery_status: int = Field(alias="delivery-status", description="1 Scheduled ... 8 SentToNetwork (final), 9 Cancelled (docs/api.md).")
    delivery_description: str = Field(alias="delivery-description")
    delivery_tat: str = Field(alias="delivery-tat", description="HH:MM:SS from acceptance to this status.")
    delivery_networkid: int = Field(alias="delivery-networkid")
    delivery_time: str = Field(alias="delivery-time", description="When this status was reached, gateway time zone.")


class TopUpRequest(_Model):
    units: str | int = Field(description="Units to add, up to two decimals, e.g. '100' or '12.50'.")
    reference: str | None = None


class TopUpResponse(_Model):
    response_code: int = Field(alias="response-code", json_schema_extra={"const": 200})
    response_description: str = Field(alias="response-description")
    partner_id: str = Field(alias="partner-id")
    credit: str = Field(description="The balance after the top-up.")


class PartnerView(_Model):
    response_code: int = Field(alias="response-code")
    response_description: str = Field(alias="response-description")
    partner_id: str = Field(alias="partner-id")
    name: str
    status: str
    credit: str
    shortcodes: list[str]


class InboxRequest(CredentialsRequest):
    since: IdLike | None = Field(None, description="Only messages with an id above this (the last id of the previous page).")
    limit: IdLike | None = Field(None, description="At most this many messages (1-1000, default 100).")


class InboundMessage(_Model):
    id: str = Field(description="Digits; ids grow, so the last one is the next page's `since`.")
    shortcode: str
    mobile: str = Field(description="The subscriber's number, international digits.")
    message: str
    keyword: str | None = Field(None, description="The keyword it was routed by, on a shared shortcode.")
    complete: bool = Field(description="False when some of its parts never arrived.")
    received: str = Field(description="When it arrived, gateway time zone.")
    forwarded: bool = Field(description="Whether the partner's endpoint has taken it.")


class InboxResponse(_Model):
    response_code: int = Field(alias="response-code")
    response_description: str = Field(alias="response-description")
    messages: list[InboundMessage]


class OptOutCheckRequest(CredentialsRequest):
    shortcode: IdLike = Field(description="One of your shortcodes (1001 for any other): whose list, with the entries for all your shortcodes.")
    mobile: IdLike | list[IdLike] = Field(description="One number, up to 1000 separated by commas, or (JSON) a list of them.")


class OptOutCheckResponse(_Model):
    response_code: int = Field(alias="response-code")
    response_description: str = Field(alias="response-description")
    shortcode: str
    optedout: list[IdLike] = Field(description="The numbers asked that are on the list (a send to them gets 1011), as sent, in their order.")
    promotional: bool = Field(description="Whether the shortcode is promotional: its messages get their network's opt-out footer.")
    footers: dict[str, str] = Field(
        description="Promotional shortcode: the footer appended (after a space) to a message, by network id; counted in parts and price. Empty otherwise."
    )


ALL_MODELS: tuple[type[BaseModel], ...] = (
    OptOutCheckRequest,
    OptOutCheckResponse,
    InboxRequest,
    InboundMessage,
    InboxResponse,
    SmsEntry,
    SendBulkRequest,
    MessageResult,
    SendResponse,
    ErrorResponse,
    SendSmsRequest,
    CredentialsRequest,
    BalanceResponse,
    DlrRequest,
    DlrResponse,
    TopUpRequest,
    PartnerView,
    LaterSmsEntry,
    HealthStatus,
    TopUpResponse,
)


def ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def request_body(model: type[BaseModel], forms: bool) -> dict[str, Any]:
    content: dict[str, Any] = {"application/json": {"schema": ref(model)}}
    if forms:
        content["application/x-www-form-urlencoded"] = {"schema": ref(model)}
    return {"requestBody": {"required": True, "content": content}}


def query_parameters(model: type[BaseModel]) -> dict[str, Any]:
    """The same fields as query-string parameters, for the GET form of an endpoint."""
    parameters = []
    for name, field in model.model_fields.items():
        parameters.append(
            {
                "name": field.alias or name,
                "in": "query",
                "required": field.is_required(),
                "description": field.description or "",
                "schema": {"type": "string"},
            }
        )
    return {"parameters": parameters}


def _error(text: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"description": text, "content": {"application/json": {"schema": ref(ErrorResponse)}}}
    if headers:
        doc["headers"] = headers
    return doc


def answer_doc(model: type[BaseModel], text: str) -> dict[int | str, dict[str, Any]]:
    return {
        200: {
            "description": text + " Request-level errors come as ErrorResponse with HTTP 200.",
            "content": {"application/json": {"schema": {"oneOf": [ref(model), ref(ErrorResponse)]}}},
        },
        405: _error("Wrong method (code 1010)."),
        413: _error("Body over the size limit (code 1010)."),
        429: _error(
            "Too many failed credential checks for this partner id (code 1006).",
            {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}},
        ),
    }


def admin_doc(model: type[BaseModel]) -> dict[int | str, dict[str, Any]]:
    return {
        200: {
            "description": "The answer, or ErrorResponse: 1006 for a wrong token or when the admin API is off (no SMSGW_ADMIN_TOKEN), 4093 for an unknown partner.",
            "content": {"application/json": {"schema": {"oneOf": [ref(model), ref(ErrorResponse)]}}},
        },
    }


def health_doc() -> dict[int | str, dict[str, Any]]:
    content = {"application/json": {"schema": ref(HealthStatus)}}
    return {200: {"description": "The store answers.", "content": content}, 503: {"description": "The store does not answer.", "content": content}}


IDEMPOTENCY_HEADER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Up to 255 printable characters. A retry with the same key and body within 24 h gets the first answer and is not charged again; the same key with another body gets 1010.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
}
PARTNER_PATH_PARAMETER = {"name": "partner_id", "in": "path", "required": True, "description": "The partner's id.", "schema": {"type": "string"}}
SECURITY_SCHEMES = {
    "adminToken": {"type": "http", "scheme": "bearer", "description": "SMSGW_ADMIN_TOKEN; without it the admin API answers 1006."},
    "metricsToken": {"type": "http", "scheme": "bearer", "description": "SMSGW_METRICS_TOKEN, when set; without it /metrics is open."},
}


def component_schemas() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for model in ALL_MODELS:
        schema = model.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    smslist = schemas["SendBulkRequest"]["properties"]["smslist"]
    smslist["prefixItems"] = [ref(SmsEntry)]
    smslist["items"] = ref(LaterSmsEntry)
    return schemas


# -- resellers and message control (api/reseller.py) ----------------------------------------------


class CreditRequest(CredentialsRequest):
    childID: IdLike = Field(description="One of the caller's child accounts.")
    amount: str | int | float = Field(description="Money, positive, at most two decimals; units = amount ÷ the child's rate, rounded down to 0.01.")


class CreditResponse(_Model):
    response_code: int = Field(alias="response-code")
    response_description: str = Field(alias="response-description", description="'Partner ID CHILD has been credited with 5 units'.")
    prev_balance: str = Field(alias="prev-balance", description="The child's balance before.")
    sms_units: str = Field(alias="sms-units", description="Units moved: '5', or '12.50' when not whole.")
    new_balance: str = Field(alias="new-balance", description="The child's balance after.")


class ChildrenRequest(CredentialsRequest):
    days: IdLike | None = Field(None, description="Period of the figures in days, 1 to 366 (default 30).")


class Child(_Model):
    partner_id: str = Field(alias="partner-id")
    name: str
    status: str
    credit: str
    rate: str = Field(description="Money per unit.")
    messages_accepted: int = Field(alias="messages-accepted")
    units_charged: str = Field(alias="units-charged")
    messages_refunded: int = Field(alias="messages-refunded")
    units_refunded: str = Field(alias="units-refunded")
    units_received: str = Field(alias="units-received", description="Credited by the reseller in the period.")


class ChildrenResponse(_Model):
    response_code: int = Field(alias="response-code")
    response_description: str = Field(alias="response-description")
    partner_id: str = Field(alias="partner-id")
    period_days: int = Field(alias="period-days")
    children: list[Child]


class CancelResponse(_Model):
    response_code: int = Field(alias="response-code")
    response_description: str = Field(alias="response-description")
    message_id: str = Field(alias="message-id")
    delivery_status: int = Field(alias="delivery-status", description="9 (Cancelled).")
    delivery_description: str = Field(alias="delivery-description")
    refunded: str = Field(description="Units given back.")
    credit: str = Field(description="The balance after the refund.")


ALL_MODELS += (CreditRequest, CreditResponse, ChildrenRequest, Child, ChildrenResponse, CancelResponse)


def finish_document(document: dict[str, Any]) -> None:
    """What the route declarations cannot say: the Idempotency-Key header of the sending
    endpoints, and the bearer tokens of the admin API and of /metrics."""
    components = document.setdefault("components", {})
    components.setdefault("schemas", {}).update(component_schemas())
    components["securitySchemes"] = SECURITY_SCHEMES
    for path, operations in document.get("paths", {}).items():
        for operation in operations.values():
            if path.rsplit("/", 1)[-1] in ("sendbulk", "sendsms", "sendotp"):
                operation.setdefault("parameters", []).append(IDEMPOTENCY_HEADER)
            if path.startswith("/api/admin/"):
                operation["security"] = [{"adminToken": []}]
                operation.setdefault("parameters", []).insert(0, PARTNER_PATH_PARAMETER)
            if path == "/metrics":
                operation["security"] = [{}, {"metricsToken": []}]
