"""The one address policy for every connection the hub makes on someone's behalf.

Printers (their drivers), mirrors and their Git LFS servers, and anything later
(webhooks, federation) take their addresses from people, so each connection is checked
like a request the server makes for them (server-side request forgery):

- a host is resolved **once** and the connection goes to exactly the addresses checked
  (pinned: a DNS answer that changes in between cannot steer it elsewhere). Python
  clients use `GuardedSession`; git's libcurl gets the same pin through
  `http.curloptResolve` (designs/remotes.py);
- every address that is not globally reachable is refused: loopback, private,
  link-local (cloud metadata), unique-local, carrier-grade NAT, multicast, unspecified,
  reserved, and IPv6 forms that embed such an IPv4 address (IPv4-mapped and -compatible,
  NAT64 `64:ff9b::/96` and the local-use `64:ff9b:1::/48`, 6to4 `2002::/16`, Teredo);
- unless the operator allows that network: `FABHUB_OUTBOUND_ALLOWED_NETWORKS` lists
  CIDR blocks (a lab's LAN for its printers, `127.0.0.0/8` for `make run`'s demo
  OctoPrint). The mirrors' older `FABHUB_MIRROR_ALLOW_PRIVATE_NETWORKS` allows every
  network for mirrors only;
- redirects are never followed (a redirect is an answer to show, not an address to
  trust), and answers are capped in size and time.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

NAT64 = ipaddress.ip_network("64:ff9b::/96")
NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
COMPATIBLE = ipaddress.ip_network("::/96")

# Largest answer a guarded session reads (printers answer JSON of a few kilobytes).
DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024
DEFAULT_TIMEOUT = (3.05, 10.0)


class OutboundRefused(Exception):
    """The policy refuses this address. `reason` is a sentence for the person who gave it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@lru_cache(maxsize=8)
def _parse_networks(spec: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in spec if item.strip())


def allowed_networks() -> tuple[Network, ...]:
    """The networks the operator lets the hub connect to although they are not global."""
    return _parse_networks(tuple(settings.FABHUB_OUTBOUND_ALLOWED_NETWORKS))


def embedded_ipv4(address: Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (and routes to), if any."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]  # (server, client): the client is where it goes
    if address in NAT64 or address in COMPATIBLE and int(address) > 1:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def address_refusal(address: Address, *, allowed: Iterable[Network] = ()) -> str | None:
    """Why the hub must not connect to `address` (None: it may)."""
    allowed = tuple(allowed)
    if any(address.version == network.version and address in network for network in allowed):
        return None
    inner = embedded_ipv4(address)
    if inner is not None:
        reason = address_refusal(inner, allowed=allowed)
        if reason is not None:
            return f"{reason} (carried inside the IPv6 address {address})"
    if isinstance(address, ipaddress.IPv6Address) and address in NAT64_LOCAL:
        return "a local-use NAT64 address, which leads into a private network"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local (cloud metadata services live there)"
    if address.is_multicast:
        return "multicast"
    if address.is_unspecified:
        return "unspecified"
    if not address.is_global:
        return "private or reserved"
    return None


def resolve(host: str, port: int) -> list[str]:
    """The addresses of `host` (itself if it is one), each once, in the resolver's order."""
    try:
        return [str(ipaddress.ip_address(host.strip("[]")))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise OutboundRefused(f"the host {host} cannot be resolved ({exc})") from None
    found = list(dict.fromkeys(str(info[4][0]).split("%", 1)[0] for info in infos))
    if not found:
        raise OutboundRefused(f"the host {host} has no address")
    return found


def checked_addresses(host: str, port: int, *, allowed: Iterable[Network] | None = None) -> list[str]:
    """Resolve `host` once; every address it has, each allowed by the policy, or refused.

    All of them are checked, not only the first: a name that answers with one public and
    one private address would otherwise reach the private one on a retry.
    """
    networks = allowed_networks() if allowed is None else tuple(allowed)
    found = resolve(host, port)
    for text in found:
        reason = address_refusal(ipaddress.ip_address(text), allowed=networks)
        if reason is not None:
            raise OutboundRefused(f"{host} is a {reason} address ({text}); the hub does not connect there")
    return found


def curl_resolve(host: str, port: int, addresses: list[str]) -> str:
    """The pin for git's libcurl (`-c http.curloptResolve=…`): `host` at `port` goes to
    exactly `addresses`, the ones `checked_addresses` approved."""
    return f"{host}:{port}:" + ",".join(f"[{a}]" if ":" in a else a for a in addresses)


class _PinnedAdapter(HTTPAdapter):
    """Connects to the checked address of the request's host; TLS is still verified
    against the host name (SNI and certificate), and the Host header keeps the name."""

    def __init__(self, session: GuardedSession) -> None:
        super().__init__(max_retries=0)
        self._session = session

    def send(  # type: ignore[override]  # takes the stubs' keyword arguments as **kwargs
        self, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        parts = urlsplit(request.url or "")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise requests.exceptions.InvalidURL(f"only http(s) addresses: {request.url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            addresses = checked_addresses(parts.hostname, port, allowed=self._session.allowed)
        except OutboundRefused as exc:
            raise requests.exceptions.ConnectionError(
                f"refused by the hub's address policy: {exc.reason}"
            ) from None
        request.headers["Host"] = parts.netloc.rsplit("@", 1)[-1]
        # The pinned address rides on the request to the pool-key hook below.
        request._fabhub_pinned = (addresses[0], parts.hostname)  # type: ignore[attr-defined]  # our own mark
        return super().send(request, **kwargs)

    def build_connection_pool_key_attributes(  # type: ignore[override]  # stubs narrow the dicts
        self, request: requests.PreparedRequest, verify: Any, cert: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        host, pool = super().build_connection_pool_key_attributes(request, verify, cert)
        host_params: dict[str, Any] = dict(host)
        pool_kwargs: dict[str, Any] = dict(pool)
        address, name = request._fabhub_pinned  # type: ignore[attr-defined]  # set by send above
        host_params["host"] = address
        if host_params["scheme"] == "https":
            pool_kwargs["server_hostname"] = name
            pool_kwargs["assert_hostname"] = name
        return host_params, pool_kwargs


class GuardedSession(requests.Session):
    """A requests session that follows the address policy: pinned, checked addresses;
    no redirects; answers over `max_response_bytes` refused; a timeout on every call.

    `allowed` overrides the operator's allowed networks (None: FABHUB_OUTBOUND_ALLOWED_NETWORKS).
    Drivers take their session from outside, so the same driver runs unguarded where a
    LAN connection is the normal case (the lab agent) and guarded on the hub.
    """

    def __init__(
        self,
        *,
        allowed: Iterable[Network] | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        timeout: Any = DEFAULT_TIMEOUT,
    ) -> None:
        super().__init__()
        self.allowed = None if allowed is None else tuple(allowed)
        self.max_response_bytes = max_response_bytes
        self.default_timeout = timeout
        self.trust_env = False  # no proxy or .netrc from the server's environment
        adapter = _PinnedAdapter(self)
        self.mount("http://", adapter)
        self.mount("https://", adapter)

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs["allow_redirects"] = False
        kwargs.setdefault("timeout", self.default_timeout)
        streamed = kwargs.pop("stream", False)
        kwargs["stream"] = True
        response = super().request(method, url, *args, **kwargs)
        if streamed:
            return response
        body = bytearray()
        for chunk in response.iter_content(64 * 1024):
            body += chunk
            if len(body) > self.max_response_bytes:
                response.close()
                raise requests.exceptions.ContentDecodingError(
                    f"the answer is larger than {self.max_response_bytes:,} bytes"
                )
        response._content = bytes(body)
        return response
