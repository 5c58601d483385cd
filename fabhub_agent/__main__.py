"""`fabhub-agent --config agent.toml` (or `python -m fabhub_agent`): run until stopped."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from fabhub_agent import __version__
from fabhub_agent.config import ConfigError, load
from fabhub_agent.runner import Agent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="fabhub-agent", description="Drive a lab's printers for a fabhub hub."
    )
    parser.add_argument("--config", type=Path, help="the TOML configuration (docs/agent.md)")
    parser.add_argument("--once", action="store_true", help="one round, then exit (for checks)")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--version", action="version", version=f"fabhub-agent {__version__}")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    try:
        config = load(args.config)
        agent = Agent(config)
    except (ConfigError, ValueError) as exc:
        print(f"fabhub-agent: {exc}", file=sys.stderr)
        return 2
    if args.once:
        agent.step()
        agent.wait_idle()
        agent.step()  # the answers of what ran
        return 0
    stop = threading.Event()

    def stop_now(*_: object) -> None:
        stop.set()
        agent.wake.set()  # the loop may be waiting out a long back-off

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop_now)
    agent.run(stop)
    agent.state.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
