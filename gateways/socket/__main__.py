"""`python -m gateways.socket`: the WebSocket gateway on DELTASTREAM_SOCKET_PORT (default 8002)."""
from __future__ import annotations

import logging
import sys

from deltastream.settings import get_settings
from gateways.socket.server import run

if __name__ == "__main__":
    settings = get_settings()
    logging.basicConfig(level=settings.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run(settings)
