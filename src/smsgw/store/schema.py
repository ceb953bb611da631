"""Tables of the store (SQLAlchemy Core). Migrations in store/migrations create exactly this;
tests/store/test_migrations.py compares the two.

Times are integer Unix milliseconds and money is integer hundredths of a unit: both compare
and add exactly on every database and need no conversion on the hot insert path.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    text,
)

metadata = MetaData()

# Row ids of tables that grow for ever (ledger, callbacks...): 64-bit on PostgreSQL, where
# INTEGER would run out; on SQLite INTEGER PRIMARY KEY is the (64-bit) rowid itself.
ROW_ID = BigInteger().with_variant(Integer, "sqlite")

partners = Table(
    "partners",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("api_key_hash", String(200), nullable=False),
    Column("balance", BigInteger, nullable=False),
    Column("status", String(16), nullable=False, server_default="active"),
    Column("callback_url", String(2000)),
    Column("callback_secret", String(200)),
    Column("created_at", BigInteger, nullable=False),
    # A child account's reseller; the reseller moves credit to it (`credit`) at its `rate`.
    Column("parent_id", String(64)),
    Column("rate", BigInteger, nullable=False, server_default=text("100")),  # money per unit, hundredths
    # Messages (parts) per second over every ingress and process; NULL: no limit.
    Column("max_mps", Integer),
    Column("allowed_ips", String(2000)),  # comma-separated CIDRs; NULL: any address
    # Where messages subscribers send to the partner's shortcodes go (signed like callbacks).
    Column("inbound_url", String(2000)),
    Column("inbound_method", String(8)),  # GET (query string), POST (JSON), or SMPP (deliver_sm to a receiver bind; no URL)
    Column("inbound_auto_reply", SmallInteger, nullable=False, server_default=text("0")),
    # 1: callback and inbound URLs may lead to loopback, private or link-local addresses.
    Column("callback_allow_private", SmallInteger, nullable=False, server_default=text("0")),
    Index("ix_partners_parent", "parent_id"),
)

shortcodes = Table(
    "shortcodes",
    metadata,
    Column("shortcode", String(32), primary_key=True),
    Column("partner_id", String(64), ForeignKey("partners.id"), nullable=False),
    # Comma-separated network ids the sender id is enabled on; NULL means every network.
    Column("networks", String(200)),
    Column("created_at", BigInteger, nullable=False),
    # Promotional sender ids get the networks' opt-out footer and their sending window.
    Column("promotional", SmallInteger, nullable=False, server_default=text("0")),
)

ledger = Table(
    "ledger",
    metadata,
    Column("id", ROW_ID, primary_key=True, autoincrement=True),
    Column("partner_id", String(64), ForeignKey("partners.id"), nullable=False),
    Column("amount", BigInteger, nullable=False),  # signed: top-ups and refunds > 0, charges < 0
    Column("balance_after", BigInteger, nullable=False),
    Column("kind", String(16), nullable=False),  # topup | charge | refund
    Column("reference", String(200), nullable=False),
    Column("message_count", Integer, nullable=False, server_default=text("0")),
    # For a charge: the batch of messages it paid for (messages.batch_id).
    Column("batch_id", BigInteger),
    Column("created_at", BigInteger, nullable=False),
    # A transfer between a reseller and its child is two entries, each naming the other.
    Column("counterpart_id", BigInteger),
    Index("ix_ledger_partner", "partner_id", "id"),
    Index("ix_ledger_batch", "batch_id"),
    Index("ix_ledger_partner_time", "partner_id", "created_at"),
)

# On SQLite the message id is the table's rowid (INTEGER PRIMARY KEY), which spares the
# accept path a separate primary-key index; elsewhere it is a BIGINT.
MESSAGE_ID = ROW_ID

messages = Table(
    "messages",
    metadata,
    Column("id", MESSAGE_ID, primary_key=True, autoincrement=False),
    Column("partner_id", String(64), nullable=False),
    Column("shortcode", String(32), nullable=False),
    Column("msisdn", String(20), nullable=False),
    Column("network_id", Integer, nullable=False),
    Column("text", Text, nullable=False),
    Column("data_coding", SmallInteger, nullable=False),
    Column("parts", SmallInteger, nullable=False),
    Column("cost", BigInteger, nullable=False),
    # The partner's clientsmsid as JSON text, so that it is echoed with the type it came in.
    Column("clientsmsid", String(200)),
    Column("priority", SmallInteger, nullable=False),
    Column("state", SmallInteger, nullable=False),
    Column("due_at", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    # The messages accepted by one request share a batch id, chosen before the transaction
    # (the first id reserved for the request); the ledger charge carries the same id.
    Column("batch_id", BigInteger, nullable=False),
    # After this the gateway stops trying (AbsentSubscriber): due time plus the validity period.
    Column("expires_at", BigInteger),
    Column("attempts", SmallInteger, nullable=False, server_default=text("0")),
    Column("lease_owner", String(64)),
    Column("lease_until", BigInteger),
    Column("submitted_at", BigInteger),
    Column("done_at", BigInteger),
    Column("error", String(200)),
    Column("connector", String(64)),  # the SMSC connection that took it
    # submit_sm of this message that got no submit_sm_resp: each may have reached the handset.
    Column("unanswered", SmallInteger, nullable=False, server_default=text("0")),
    # The claim order, whole: a claim reads the first due rows and stops.
    Index("ix_messages_due", "state", "priority", "due_at", "id"),
    # Messages waiting for a receipt, by expiry: the sweep that closes those whose receipt
    # never came reads only them. Partial, so accepting a message does not write it.
    Index("ix_messages_awaiting_receipt", "expires_at", sqlite_where=text("state = 2"), postgresql_where=text("state = 2")),
    # No other index: each one costs every accepted message a write. The console finds a
    # number's messages in message_numbers and a partner's newest through its ledger entries.
)

# The console's index of messages by number, written by the roller (store/rollups.py) off the
# acceptance path, in batches sorted by number; messages above the roll mark are found by a
# scan of the few ids above it.
message_numbers = Table(
    "message_numbers",
    metadata,
    Column("msisdn", String(20), primary_key=True),
    Column("partner_id", String(64), primary_key=True),
    Column("message_id", BigInteger, primary_key=True),
)

# Messages accepted per hour (of created_at), partner and network, with their parts and cost:
# the dashboards' figures, written by the roller in the transaction that moves its mark.
message_rollups = Table(
    "message_rollups",
    metadata,
    Column("hour", BigInteger, primary_key=True),  # the hour's start, Unix ms
    Column("partner_id", String(64), primary_key=True),
    Column("network_id", Integer, primary_key=True),
    Column("messages", BigInteger, nullable=False),
    Column("parts", BigInteger, nullable=False),
    Column("cost", BigInteger, nullable=False),
)

# Messages that moved, counted per hour of the move, partner, network, SMSC (the connector
# that took it; '' for one no carrier took) and the state it moved to: SentToNetwork when a
# carrier took it, or its final state. Written in the transaction that moves the messages
# (store/rollups.py: count_sent, count_finished), so a count is neither lost nor made twice.
outcome_rollups = Table(
    "outcome_rollups",
    metadata,
    Column("hour", BigInteger, primary_key=True),  # the hour's start, Unix ms
    Column("partner_id", String(64), primary_key=True),
    Column("network_id", Integer, primary_key=True),
    Column("smsc", String(64), primary_key=True),
    Column("state", SmallInteger, primary_key=True),
    Column("messages", BigInteger, nullable=False),
    Column("parts", BigInteger, nullable=False),
)

# How far the roller got: every message with an id below next_id is in message_numbers and
# message_rollups. pending_limit is the id counter read at pending_since; ids below it are
# rolled once that has settled. The lease lets one dispatcher roll at a time.
roll_marks = Table(
    "roll_marks",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("next_id", BigInteger, nullable=False),
    Column("pending_limit", BigInteger),
    Column("pending_since", BigInteger),
    Column("lease_owner", String(64)),
    Column("lease_until", BigInteger),
)

# One row per submit_sm a message went out as, with the SMSC's id for it.
message_parts = Table(
    "message_parts",
    metadata,
    Column("message_id", BigInteger, primary_key=True),
    Column("part_no", SmallInteger, primary_key=True),
    Column("connector", String(64), nullable=False),
    Column("smsc_message_id", String(80), nullable=False),
    Column("state", SmallInteger, nullable=False),
    Column("stat", String(16)),
    Column("error", String(16)),
    Column("receipt_at", BigInteger),
)

# Every form under which an SMSC may quote a part's id in its receipt (hex or decimal, with or
# without leading zeros): a receipt matches a part when they share a key on one connector.
receipt_keys = Table(
    "receipt_keys",
    metadata,
    # The key leads the primary key: receipts are looked up by key alone, for a whole batch.
    Column("key", String(80), primary_key=True),
    Column("connector", String(64), primary_key=True),
    Column("message_id", BigInteger, primary_key=True),
    Column("part_no", SmallInteger, primary_key=True),
    Column("parts", SmallInteger, nullable=False),  # how many SMSC ids the message went out with
)

# Receipts that matched no part (yet): kept and counted, matched again when a late
# submit_sm_resp records the id they quote.
unmatched_receipts = Table(
    "unmatched_receipts",
    metadata,
    Column("id", ROW_ID, primary_key=True, autoincrement=True),
    Column("connector", String(64), nullable=False),
    Column("smsc_message_id", String(80), nullable=False),
    Column("keys", String(400), nullable=False),  # comma-separated matching keys
    Column("state", SmallInteger, nullable=False),
    Column("stat", String(16)),
    Column("error", String(16)),
    Column("done_at", BigInteger),
    Column("received_at", BigInteger, nullable=False),
    Column("matched_at", BigInteger),
    Index("ix_unmatched_open", "matched_at", "connector"),
)

# The keys of each unmatched receipt, so that recording a submit_sm_resp finds the receipts
# that overtook it by key, however many others are waiting. Deleted once matched.
unmatched_receipt_keys = Table(
    "unmatched_receipt_keys",
    metadata,
    Column("key", String(80), primary_key=True),
    Column("connector", String(64), primary_key=True),
    Column("receipt_id", BigInteger, primary_key=True),
    Column("received_at", BigInteger, nullable=False),
)

# Delivery reports to POST to partners' callback URLs (an outbox: written in the transaction
# that makes a message final, sent until a 2xx or given up).
callbacks = Table(
    "callbacks",
    metadata,
    Column("id", ROW_ID, primary_key=True, autoincrement=True),
    Column("partner_id", String(64), nullable=False),
    Column("message_id", BigInteger, nullable=False),
    Column("url", String(2000), nullable=False),  # the URL when queued; each POST goes to the partner's current one
    Column("body", LargeBinary, nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", BigInteger, nullable=False),
    Column("lease_until", BigInteger),
    Column("delivered_at", BigInteger),
    Column("last_error", String(200)),
    Column("created_at", BigInteger, nullable=False),
    Column("given_up_at", BigInteger),
    Index("ix_callbacks_due", "delivered_at", "given_up_at", "next_attempt_at"),
    Index("ix_callbacks_message", "message_id"),  # a message's history in the console
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("partner_id", String(64), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("body_sha256", String(64), nullable=False),
    Column("response", LargeBinary, nullable=False),  # zlib-compressed JSON answer
    Column("created_at", BigInteger, nullable=False),
    Index("ix_idempotency_created", "created_at"),
)

# Hi/lo allocation of message ids: each process reserves a block in one short transaction
# and hands ids out from memory, so ids are unique across processes without a hot row.
id_blocks = Table(
    "id_blocks",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("next_value", BigInteger, nullable=False),
)

# Dispatcher processes alive (a heartbeat), so that SMSC binds can be shared out among them.
dispatchers = Table(
    "dispatchers",
    metadata,
    Column("owner", String(64), primary_key=True),
    Column("seen_at", BigInteger, nullable=False),
)

# Which dispatcher owns each SMSC connection: one bind per connection name at a time, taken
# over when the owner's lease runs out.
bind_leases = Table(
    "bind_leases",
    metadata,
    Column("connector", String(64), primary_key=True),
    Column("owner", String(64), nullable=False),
    Column("lease_until", BigInteger, nullable=False),
)

# What the dispatcher holding a route last said of it, with each renewal of its bind lease:
# the console reads routes here (their state lives in that dispatcher's memory).
route_reports = Table(
    "route_reports",
    metadata,
    Column("route", String(64), primary_key=True),
    Column("owner", String(64), nullable=False),
    Column("kind", String(16), nullable=False),  # smpp or upstream
    Column("networks", String(200)),  # comma-separated network ids; NULL: every network
    Column("priority", Integer, nullable=False),
    Column("weight", Integer, nullable=False),
    Column("state", String(16), nullable=False),  # up, down or probing (dispatch/routing.py)
    Column("bound", Boolean, nullable=False),
    Column("accepted", BigInteger, nullable=False),  # submits the carrier took since the holder bound it
    Column("accepted_recent", BigInteger, nullable=False),  # of those, since the report before
    Column("failovers", Integer, nullable=False),
    Column("since", BigInteger, nullable=False),  # when the holder bound it
    Column("reported_at", BigInteger, nullable=False),
)

# The token bucket of a partner with a rate limit (partners.max_mps), in thousandths of a
# part: shared by every process, taken with one conditional UPDATE.
rate_buckets = Table(
    "rate_buckets",
    metadata,
    Column("partner_id", String(64), primary_key=True),
    Column("tokens", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

# Secrets the gateway generates for itself and every process must share: `api_key_hmac`
# keys the stored API key hashes when SMSGW_API_KEY_SECRET is not set.
server_secrets = Table(
    "server_secrets",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("value", String(200), nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

# Keywords of shared shortcodes: the first word of an inbound message picks the partner.
shortcode_keywords = Table(
    "shortcode_keywords",
    metadata,
    Column("shortcode", String(32), primary_key=True),
    Column("keyword", String(32), primary_key=True),  # upper case
    Column("partner_id", String(64), ForeignKey("partners.id"), nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

# Numbers that must not get a partner's messages from a shortcode ("*": from any of them).
# The primary key is the acceptance lookup: partner, shortcode IN (s, '*'), msisdn IN (...).
optouts = Table(
    "optouts",
    metadata,
    Column("partner_id", String(64), primary_key=True),
    Column("shortcode", String(32), primary_key=True),
    Column("msisdn", String(20), primary_key=True),
    Column("source", String(16), nullable=False),  # operator | keyword | receipt
    Column("created_at", BigInteger, nullable=False),
)

# Parts of concatenated inbound messages until the last one arrives (over any bind, in any
# order); the transaction that stores the last part assembles the message.
inbound_parts = Table(
    "inbound_parts",
    metadata,
    Column("msisdn", String(20), primary_key=True),
    Column("shortcode", String(32), primary_key=True),
    Column("reference", Integer, primary_key=True),
    Column("total", SmallInteger, primary_key=True),
    Column("part_no", SmallInteger, primary_key=True),
    Column("data_coding", SmallInteger, nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("received_at", BigInteger, nullable=False),
    # Set once the message is assembled: the part stays a while, so that a part the SMSC sends
    # again (its deliver_sm_resp lost) is known and does not start a new message.
    Column("message_id", BigInteger),
    Index("ix_inbound_parts_received", "received_at"),
)

# Messages subscribers sent to shortcodes, and the outbox of their forwards to partners
# (next_attempt_at is NULL when there is nothing to forward: unrouted, or no inbound URL).
inbound_messages = Table(
    "inbound_messages",
    metadata,
    Column("id", ROW_ID, primary_key=True, autoincrement=True),
    Column("shortcode", String(32), nullable=False),
    Column("msisdn", String(20), nullable=False),
    Column("text", Text, nullable=False),
    Column("partner_id", String(64)),  # NULL: no partner owns the shortcode or the keyword
    Column("keyword", String(32)),  # set when routed by keyword on a shared shortcode
    Column("parts", SmallInteger, nullable=False),
    Column("complete", SmallInteger, nullable=False),  # 0: parts were missing at the timeout
    Column("received_at", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", BigInteger),
    Column("lease_until", BigInteger),
    Column("forwarded_at", BigInteger),
    Column("last_error", String(200)),
    Column("reply_id", BigInteger),  # the message id of the auto-reply, once sent
    # When its deliver_sm_resp was handed to the connection (a message of parts: when stored);
    # NULL: the SMSC may still resend it, however late (store/inbound.py).
    Column("answered_at", BigInteger),
    Index("ix_inbound_partner", "partner_id", "id"),
    Index("ix_inbound_due", "forwarded_at", "next_attempt_at"),
    Index("ix_inbound_sender", "msisdn", "received_at"),
    # Partial, so that answering a message (nearly all of them) leaves it.
    Index("ix_inbound_unanswered", "msisdn", sqlite_where=text("answered_at IS NULL"), postgresql_where=text("answered_at IS NULL")),
)

# People who run the gateway from the web console: a name and a scrypt hash of the password.
operators = Table(
    "operators",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("password_hash", String(200), nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

# A partner's password for the portal: a person's login, apart from the API key its clients use.
portal_passwords = Table(
    "portal_passwords",
    metadata,
    Column("partner_id", String(64), ForeignKey("partners.id"), primary_key=True),
    Column("password_hash", String(200), nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

# Signed-in browsers of the console (area "console", subject an operator) and of the portal
# (area "portal", subject a partner id). The cookie carries a random token; only its SHA-256
# is stored, so a copy of the table opens no session.
web_sessions = Table(
    "web_sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("area", String(16), nullable=False),
    Column("subject", String(64), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Index("ix_web_sessions_expires", "expires_at"),
    Index("ix_web_sessions_subject", "area", "subject"),
)

# What operators did in the console: who, what, to what, when.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", ROW_ID, primary_key=True, autoincrement=True),
    Column("operator", String(64), nullable=False),
    Column("action", String(32), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("detail", String(2000), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_audit_log_created", "created_at"),
)

# Partners' accounts on the partner SMPP server: a bind with `system_id` and the password
# (hashed like API keys) acts for `partner_id`, within the account's bind count, window and rate.
smpp_accounts = Table(
    "smpp_accounts",
    metadata,
    Column("system_id", String(16), primary_key=True),
    Column("partner_id", String(64), ForeignKey("partners.id"), nullable=False),
    Column("password_hash", String(200), nullable=False),
    Column("max_binds", Integer, nullable=False),
    Column("window", Integer, nullable=False),  # unanswered submit_sm one bind may have
    Column("tps", Integer),  # submit_sm per second over all the account's binds; NULL: no limit
    Column("created_at", BigInteger, nullable=False),
    Index("ix_smpp_accounts_partner", "partner_id"),
)

# Messages submitted over the partner SMPP server: written in the transaction that accepts
# them, so their receipt (a deliver_sm to a receiver bind of the account) waits here durably
# from the start, until the ESME answers it ESME_ROK.
smpp_receipts = Table(
    "smpp_receipts",
    metadata,
    Column("message_id", BigInteger, primary_key=True),
    Column("system_id", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", BigInteger, nullable=False, server_default=text("0")),
    Column("delivered_at", BigInteger),
    # The receipts still owed, per account: partial, so delivered ones cost the lookup nothing.
    Index(
        "ix_smpp_receipts_owed", "system_id", "message_id", sqlite_where=text("delivered_at IS NULL"), postgresql_where=text("delivered_at IS NULL")
    ),
)

# Campaigns a partner sends from the portal: the uploaded spreadsheet is kept (`upload`) from
# the preview until its messages are accepted; `confirm_token` is the
# preview's one-time confirmation token: a confirmation sent twice (a double click, a reload)
# moves it from preview to accepting once.
campaigns = Table(
    "campaigns",
    metadata,
    Column("id", ROW_ID, primary_key=True, autoincrement=True),
    Column("partner_id", String(64), ForeignKey("partners.id"), nullable=False),
    Column("name", String(200), nullable=False),  # the uploaded file's name
    Column("kind", String(8), nullable=False),  # csv or xlsx
    Column("shortcode", String(32), nullable=False),
    Column("template", Text, nullable=False),
    Column("mobile_column", String(200)),  # None: found by its name
    Column("upload", LargeBinary),
    Column("confirm_token", String(64), nullable=False),
    Column("status", String(16), nullable=False),  # preview, accepting, accepted, stopped
    Column("rows", Integer, nullable=False),
    Column("valid", Integer, nullable=False),
    Column("estimated_cost", BigInteger, nullable=False),
    # Blocks of CAMPAIGN_BATCH rows accepted so far, and the outcome of their entries.
    Column("batches_done", Integer, nullable=False, server_default=text("0")),
    Column("accepted", Integer, nullable=False, server_default=text("0")),
    Column("refused", Integer, nullable=False, server_default=text("0")),
    Column("detail", String(2000)),  # why it stopped
    Column("created_at", BigInteger, nullable=False),
    Column("confirmed_at", BigInteger),
    Column("heartbeat_at", BigInteger),  # the accepting process's last sign of life
    Column("finished_at", BigInteger),
    Index("ix_campaigns_partner", "partner_id", "id"),
)

# The message ids a campaign's messages have: runs of consecutive ids, each within one accepted
# batch, so its messages are read through the primary key of messages and nothing else.
campaign_ranges = Table(
    "campaign_ranges",
    metadata,
    Column("campaign_id", BigInteger, ForeignKey("campaigns.id"), primary_key=True),
    Column("first_id", BigInteger, primary_key=True),
    Column("last_id", BigInteger, nullable=False),
)

# Console and portal forms that move money or create something carry a one-time id; the first
# POST with it records here, in its own transaction, where it led, and a second POST with the
# same id (a double click, a reload) changes nothing and is sent there too.
form_submissions = Table(
    "form_submissions",
    metadata,
    Column("area", String(16), primary_key=True),
    Column("subject", String(64), primary_key=True),
    Column("form_id", String(64), primary_key=True),
    Column("result", String(2000), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_form_submissions_created", "created_at"),
)

# Inbound messages of partners that take them over SMPP, owed to a receiver bind of any of
# the partner's SMPP accounts until one answers the deliver_sm ESME_ROK (stored with the
# message, in the transaction that receives it).
smpp_inbound = Table(
    "smpp_inbound",
    metadata,
    Column("inbound_id", BigInteger, primary_key=True),
    Column("partner_id", String(64), nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", BigInteger, nullable=False, server_default=text("0")),
    Column("delivered_at", BigInteger),
    Index(
        "ix_smpp_inbound_owed", "partner_id", "inbound_id", sqlite_where=text("delivered_at IS NULL"), postgresql_where=text("delivered_at IS NULL")
    ),
)

# Requests to an upstream provider (connectors/upstream.py), written before they are sent: a
# message whose answer was lost goes again in the same request, with the same
# Idempotency-Key and the same body, so the upstream answers it as it did the first time.
upstream_requests = Table(
    "upstream_requests",
    metadata,
    Column("idempotency_key", String(64), primary_key=True),
    Column("route", String(64), nullable=False),
    Column("entries", Text, nullable=False),  # the smslist as JSON, without the route's credentials
    Column("created_at", BigInteger, nullable=False),
    Index("ix_upstream_requests_created", "created_at"),
)

# Which request each message of an upstream route last went out in, while its answer there
# may matter: dropped once the upstream answered it with a refusal or a retry.
upstream_request_messages = Table(
    "upstream_request_messages",
    metadata,
    Column("message_id", BigInteger, primary_key=True),
    Column("idempotency_key", String(64), nullable=False),
    Index("ix_upstream_request_messages_key", "idempotency_key"),
)
