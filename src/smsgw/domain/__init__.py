"""Pure rules of the gateway: codes, numbers, encodings, prices, message states. No I/O."""
