"""The test servers: see `deltastream.runtime.stack` (shared with the benchmarks)."""
from deltastream.runtime.stack import EXTERNAL_ENV, Stack, free_port, start_stack, terminate

__all__ = ["EXTERNAL_ENV", "Stack", "free_port", "start_stack", "terminate"]
