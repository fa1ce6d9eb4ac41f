"""The WebSocket gateway (DESIGN.md, "WebSocket"): live fan-out of the Redis sink's envelopes."""
