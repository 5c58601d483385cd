"""The agent's configuration: a TOML file, with environment variables over it.

```toml
[hub]
url = "https://hub.example.org"       # FABHUB_AGENT_HUB_URL
token_file = "/etc/fabhub-agent/token"  # or token = "fha_…", or FABHUB_AGENT_TOKEN
state_dir = "/var/lib/fabhub-agent"   # FABHUB_AGENT_STATE_DIR
max_gcode_mb = 512
ca_bundle = "/etc/ssl/private-ca.pem"  # optional: a hub behind a private CA
proxy = "http://proxy.lab:3128"        # optional: a proxy the lab's network requires

[[printer]]
id = 12                               # the printer's id on the hub (its lab page shows it)
protocol = "octoprint"                # octoprint | moonraker | prusalink | simulated
url = "http://192.168.1.40"
api_key_env = "PRUSA_MK4_KEY"         # or api_key = "…" (keep the file private then)
```

The printers' addresses and keys live here only; the hub never sees them.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROTOCOLS = ("octoprint", "moonraker", "prusalink", "simulated")


class ConfigError(Exception):
    pass


@dataclass(frozen=True)
class PrinterConfig:
    id: int
    protocol: str
    url: str = ""
    api_key: str = field(default="", repr=False)
    username: str | None = None
    port: str | None = None
    baudrate: int | None = None
    print_seconds: float = 30.0  # simulated printers only


@dataclass(frozen=True)
class AgentConfig:
    hub_url: str
    token: str = field(repr=False)
    state_dir: Path
    printers: tuple[PrinterConfig, ...]
    max_gcode_bytes: int = 512 * 1024 * 1024
    poll_seconds: float = 3.0  # until the hub says otherwise
    ca_bundle: str | None = None  # a CA file for a hub behind a private CA
    proxy: str | None = None  # an HTTP(S) proxy the lab's network requires


def load(path: Path | None, environ: dict[str, str] | None = None) -> AgentConfig:
    env = dict(os.environ if environ is None else environ)
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read the configuration {path}: {exc}") from exc
    hub = data.get("hub", {})
    hub_url = env.get("FABHUB_AGENT_HUB_URL") or hub.get("url") or ""
    token = env.get("FABHUB_AGENT_TOKEN") or hub.get("token") or ""
    if not token and hub.get("token_file"):
        try:
            token = Path(hub["token_file"]).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read the token file: {exc}") from exc
    if not hub_url or not token:
        raise ConfigError(
            "the hub's URL and the agent's token are required ([hub] url and token or token_file)"
        )
    state_dir = Path(env.get("FABHUB_AGENT_STATE_DIR") or hub.get("state_dir") or "fabhub-agent-state")
    printers = []
    for item in data.get("printer", []):
        protocol = item.get("protocol", "octoprint")
        if protocol not in PROTOCOLS:
            raise ConfigError(f"unknown printer protocol {protocol!r} (one of {', '.join(PROTOCOLS)})")
        if not isinstance(item.get("id"), int):
            raise ConfigError("every [[printer]] needs the hub's printer id (an integer)")
        key = item.get("api_key", "")
        if item.get("api_key_env"):
            key = env.get(item["api_key_env"], "")
        if protocol != "simulated" and not item.get("url"):
            raise ConfigError(f"printer {item['id']} needs a url")
        printers.append(
            PrinterConfig(
                id=item["id"],
                protocol=protocol,
                url=item.get("url", ""),
                api_key=key,
                username=item.get("username"),
                port=item.get("port"),
                baudrate=item.get("baudrate"),
                print_seconds=float(item.get("print_seconds", 30.0)),
            )
        )
    return AgentConfig(
        hub_url=hub_url,
        token=token,
        state_dir=state_dir,
        printers=tuple(printers),
        max_gcode_bytes=int(hub.get("max_gcode_mb", 512)) * 1024 * 1024,
        poll_seconds=float(hub.get("poll_seconds", 3.0)),
        ca_bundle=env.get("FABHUB_AGENT_CA_BUNDLE") or hub.get("ca_bundle"),
        proxy=env.get("FABHUB_AGENT_PROXY") or hub.get("proxy"),
    )
