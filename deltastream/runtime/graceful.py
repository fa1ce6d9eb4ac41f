"""Run a server, delaying its stop so the pipeline can drain into it first.

honcho signals every child at once on Ctrl-C; a producer flushing or a sink committing
on SIGTERM needs Kafka, MongoDB and Redis to still answer. This wrapper keeps the server
in its own session (so the group-wide SIGTERM does not reach it), waits `--grace`
seconds, then stops it. The server dies with the wrapper (PR_SET_PDEATHSIG), so even a
SIGKILL of the wrapper leaves no orphan.

    python -m deltastream.runtime.graceful --grace 2 -- redis-server --port 6379
"""
from __future__ import annotations

import argparse
import ctypes
import signal
import subprocess
import sys
import threading
import time

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """`preexec_fn`: the kernel SIGKILLs the child when the thread that started it dies."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:  # not Linux: the wrapper's own SIGTERM handling still applies
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grace", type=float, default=2.0)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no server command given")

    server = subprocess.Popen(command, start_new_session=True, preexec_fn=die_with_parent)
    stopping = threading.Event()

    def on_signal(signum, _frame) -> None:
        if stopping.is_set():
            return
        stopping.set()

        def stop_later() -> None:
            time.sleep(args.grace)
            if server.poll() is None:
                server.send_signal(signal.SIGTERM)

        threading.Thread(target=stop_later, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return server.wait()


if __name__ == "__main__":
    sys.exit(main())
