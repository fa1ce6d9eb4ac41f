"""Run nx-27017 (MongoDB wire protocol over SQLite) in the foreground, at WARNING level.

nx-27017 logs every command at INFO with no flag to turn that off: two lines per request
drown the other servers' output under `up` and cost throughput. Same CLI otherwise.
"""
from __future__ import annotations

import logging
import sys

from nx_27017 import nx_27017

_basic_config = logging.basicConfig


def _quiet_basic_config(**kwargs) -> None:
    kwargs["level"] = max(kwargs.get("level", logging.WARNING), logging.WARNING)
    _basic_config(**kwargs)


if __name__ == "__main__":
    logging.basicConfig = _quiet_basic_config  # type: ignore[assignment]
    sys.argv[0] = "nx-27017"
    sys.exit(nx_27017.main())
