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


class SendBulkRequest(_Model):
    count: IdLike | None = Field(None, description="Must equal the length of smslist when present.")
    smslist: list[SmsEntry] = Field(max_length=1000)


class MessageResult(_Model):
    response_code: int = Field(alias="response-code", description="200, or 1002/1003/1004/1005/1009 for this entry.")
    response_description: str = Field(alias="response-description")
    mobile: Any = Field(description="Normalised number on success (string in sendbulk, number in sendsms); as sent on failure.")
    messageid: str | None = Field(None, description="Digits; present on success.")
    clientsmsid: IdLike | None = None
    networkid: int | None = Field(None, description="Network id of the number; present on success.")


class SendResponse(_Model):
    responses: list[MessageResult]


class ErrorResponse(_Model):
    response_code: int = Field(alias="response-code")
    response_description: str = Field(alias="response-description")


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
    delivery_status: int = Field(alias="delivery-status", description="1 Scheduled ... 7 Unknown (docs/api.md).")
    delivery_description: str = Field(alias="delivery-description")
    delivery_tat: str = Field(alias="delivery-tat", description="HH:MM:SS from acceptance to this status.")
    delivery_networkid: int = Field(alias="delivery-networkid")
    delivery_time: str = Field(alias="delivery-time", description="When this status was reached, gateway time zone.")


class TopUpRequest(_Model):
    units: str | int = Field(description="Units to add, up to two decimals, e.g. '100' or '12.50'.")
    reference: str | None = None


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


ALL_MODELS: tuple[type[BaseModel], ...] = (
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


def answer_doc(model: type[BaseModel], text: str) -> dict[int | str, dict[str, Any]]:
    return {
        200: {
            "description": text + " Request-level errors come as ErrorResponse with HTTP 200.",
            "content": {"application/json": {"schema": {"oneOf": [ref(model), ref(ErrorResponse)]}}},
        },
        405: {"description": "Wrong method (code 1010).", "content": {"application/json": {"schema": ref(ErrorResponse)}}},
        413: {"description": "Body over the size limit (code 1010).", "content": {"application/json": {"schema": ref(ErrorResponse)}}},
    }


def component_schemas() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for model in ALL_MODELS:
        schema = model.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return schemas
