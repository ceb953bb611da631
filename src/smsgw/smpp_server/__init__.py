"""The partner SMPP server: partners' ESMEs bind to smsgw and submit like the HTTP API does.

`assembly` turns submit_sm PDUs into whole messages (UDH, SAR, message_payload), `statuses`
maps the acceptance service's answers to SMPP command_status values, `session` is one bind,
`server` the listener, the accounts' binds and the receipts owed to them.
"""
