"""What the gateway does for partners whatever the transport they use (HTTP API, SMPP)."""
