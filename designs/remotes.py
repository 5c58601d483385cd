"""Remote git addresses the hub fetches from and pushes to, and the Git LFS client for them.

A mirror's address is typed by a person and then used by the server, so it is checked
like any request the server makes on someone's behalf (server-side request forgery):

- only `http://`, `https://` and `ssh://` addresses; never `file://`, a local path,
  `ext::`/`fd::` or any `<transport>::` helper, scp-like `host:path`, or anything git
  could read as an option (`--upload-pack=…`);
- no credentials inside the address (they would be shown to everyone who sees it);
- hosts in FABHUB_MIRROR_DENIED_HOSTS are refused, and when FABHUB_MIRROR_ALLOWED_HOSTS
  is set only those are allowed (`example.org`, or `*.example.org` for its sub-domains);
- the host must resolve only to public addresses, unless FABHUB_MIRROR_ALLOW_PRIVATE_NETWORKS
  is on or the host is named in the allow list: loopback, private, link-local (cloud
  metadata), carrier-grade NAT, multicast and reserved addresses are refused.

The check runs when the address is saved and again before every connection, and git
(and the LFS client below) then connects to exactly the addresses that were checked
(`http.curloptResolve`, or the address itself for ssh): a DNS answer that changes in
between (DNS rebinding) cannot steer the server elsewhere. Redirects are not followed.
"""

from __future__ import annotations

import base64
import http.client
import ipaddress
import json
import re
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import urlsplit

from django.conf import settings

from designs.git import RemoteAccess
from hub.exceptions import ValidationError
from hub.outbound import OutboundRefused, address_refusal, allowed_networks, curl_resolve, resolve

SCHEMES = ("http", "https", "ssh")
DEFAULT_PORTS = {"http": 80, "https": 443, "ssh": 22}
MAX_URL_LENGTH = 2000
HOST_RE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*\.?$")
SSH_USER_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")
# `git@github.com:org/repo.git`: git reads it as ssh, with a path relative to the home.
SCP_LIKE_RE = re.compile(r"^(?:[^@/\s]+@)?[^/:\s]+:(?!//)")
HELPER_RE = re.compile(r"^[A-Za-z0-9+.-]+::")


class RemoteError(Exception):
    """Talking to a remote failed. `retryable` says whether trying later may help."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class RemoteUrl:
    url: str
    scheme: str
    host: str  # lowercase, IDNA-encoded, IPv6 without brackets
    port: int
    user: str  # ssh only

    @property
    def is_ssh(self) -> bool:
        return self.scheme == "ssh"


@dataclass(frozen=True)
class Credential:
    """What a remote over http(s) accepts: a username and a token (or password)."""

    username: str
    secret: str

    def authorization(self) -> str:
        if not self.username:
            return f"Bearer {self.secret}"
        pair = f"{self.username}:{self.secret}".encode()
        return "Basic " + base64.b64encode(pair).decode()


def _refuse(url: str, reason: str) -> ValidationError:
    shown = url if len(url) <= 120 else url[:117] + "…"
    return ValidationError(f"{shown!r} cannot be used as a remote: {reason}", field="url")


def remote_url_check(url: str) -> RemoteUrl:
    """The address, parsed, if it passes every check that needs no network; else ValidationError."""
    if not isinstance(url, str) or not url.strip():
        raise ValidationError("Give the address of a git repository (https://… or ssh://…).", field="url")
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise _refuse(url, f"it is longer than {MAX_URL_LENGTH} characters.")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise _refuse(url, "it contains spaces or control characters.")
    if url.startswith("-"):
        raise _refuse(url, "it starts with '-', which git would read as an option.")
    if HELPER_RE.match(url):
        raise _refuse(
            url, "'<transport>::' addresses (ext::, fd::, remote helpers) run programs on the server."
        )
    if "://" not in url:
        if SCP_LIKE_RE.match(url) and not url.startswith(("/", ".", "~")):
            host_part = url.split(":", 1)
            raise _refuse(
                url,
                f"write the ssh address in full, e.g. ssh://{host_part[0]}/{host_part[1].lstrip('/')}.",
            )
        raise _refuse(url, "local paths are not allowed; use an http(s):// or ssh:// address.")
    scheme = url.split("://", 1)[0].lower()
    if scheme == "file":
        raise _refuse(url, "file:// addresses would read the server's own disk.")
    if scheme not in SCHEMES:
        raise _refuse(url, "only http://, https:// and ssh:// addresses are allowed.")
    parts = urlsplit(url)
    if parts.password is not None or (parts.username is not None and scheme != "ssh"):
        raise _refuse(url, "put the credential in the credential field, not in the address.")
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        raise _refuse(url, "a repository address has no query (?…) or fragment (#…).")
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError:
        raise _refuse(url, "its port is not a number between 1 and 65535.") from None
    host = _normalise_host(url, parts.hostname or "")
    user = parts.username or ""
    if scheme == "ssh" and user and not SSH_USER_RE.match(user):
        raise _refuse(url, "the ssh user name may hold only letters, digits, '.', '_' and '-'.")
    if not parts.path.strip("/"):
        raise _refuse(url, "it names no repository (the path is empty).")
    _check_host_lists(url, host)
    # Rebuilt from its checked parts: the scheme and host git and curl see are exactly
    # the ones checked (lowercase, IDNA), whatever spelling was typed.
    shown_host = f"[{host}]" if ":" in host else host
    shown_port = f":{parts.port}" if parts.port else ""
    userinfo = f"{user}@" if user else ""
    return RemoteUrl(
        url=f"{scheme}://{userinfo}{shown_host}{shown_port}{parts.path}",
        scheme=scheme,
        host=host,
        port=port,
        user=user,
    )


def _normalise_host(url: str, host: str) -> str:
    if not host:
        raise _refuse(url, "it has no host name.")
    if host.startswith("-"):
        raise _refuse(url, "its host starts with '-', which ssh would read as an option.")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    try:
        host = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise _refuse(url, "its host name is not valid.") from None
    if not HOST_RE.match(host) or len(host) > 253:
        raise _refuse(url, "its host name is not valid.")
    return host.rstrip(".")


def _host_matches(host: str, patterns: list[str]) -> bool:
    """`example.org` matches that host only; `*.example.org` matches its sub-domains."""
    for pattern in patterns:
        pattern = pattern.strip().lower().rstrip(".")
        if pattern.startswith("*.") and host.endswith(pattern[1:]):
            return True
        if pattern and host == pattern:
            return True
    return False


def _check_host_lists(url: str, host: str) -> None:
    if _host_matches(host, settings.FABHUB_MIRROR_DENIED_HOSTS):
        raise _refuse(url, f"the hub's administrators do not allow {host}.")
    allowed = settings.FABHUB_MIRROR_ALLOWED_HOSTS
    if allowed and not _host_matches(host, allowed):
        raise _refuse(url, f"this hub mirrors only from and to: {', '.join(allowed)}.")


def _address_refusal(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    # The hub's one address policy (hub/outbound.py), with the networks its operator allows.
    return address_refusal(address, allowed=allowed_networks())


def remote_addresses(remote: RemoteUrl) -> list[str]:
    """The addresses `remote`'s host resolves to, each one allowed; else ValidationError.

    Private networks are refused unless FABHUB_MIRROR_ALLOW_PRIVATE_NETWORKS is on or an
    administrator listed the host in FABHUB_MIRROR_ALLOWED_HOSTS.
    """
    try:
        found = resolve(remote.host, remote.port)
    except OutboundRefused as exc:
        raise ValidationError(exc.reason[0].upper() + exc.reason[1:] + ".", field="url") from None
    trusted = settings.FABHUB_MIRROR_ALLOW_PRIVATE_NETWORKS or (
        settings.FABHUB_MIRROR_ALLOWED_HOSTS
        and _host_matches(remote.host, settings.FABHUB_MIRROR_ALLOWED_HOSTS)
    )
    if not trusted:
        for address in found:
            reason = _address_refusal(ipaddress.ip_address(address))
            if reason:
                raise _refuse(
                    remote.url,
                    f"{remote.host} is a {reason} address ({address}); the hub does not connect there.",
                )
    return found


def remote_access(
    url: str, credential: Credential | None = None, *, timeout: int | None = None
) -> RemoteAccess:
    """Everything git needs to reach `url` safely: checked now, pinned to checked addresses."""
    remote = remote_url_check(url)
    addresses = remote_addresses(remote)
    timeout = timeout or settings.FABHUB_MIRROR_TIMEOUT_S
    if remote.is_ssh:
        if credential is not None:
            raise ValidationError(
                "ssh remotes use the hub's own ssh key; a stored credential is only for http(s).",
                field="credential",
            )
        # Connect to the checked address; the host key is still looked up by the name.
        address = addresses[0]
        shown = f"[{address}]" if ":" in address else address
        user = f"{remote.user}@" if remote.user else ""
        path = urlsplit(remote.url).path
        port = f":{remote.port}" if remote.port != 22 else ""
        return RemoteAccess(
            url=f"ssh://{user}{shown}{port}{path}", ssh_host_alias=remote.host, timeout=timeout
        )
    resolve = None
    if not _is_ip(remote.host):
        resolve = curl_resolve(remote.host, remote.port, addresses)
    header = f"Authorization: {credential.authorization()}" if credential is not None else None
    return RemoteAccess(url=remote.url, resolve=resolve, auth_header=header, timeout=timeout)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


# -- Git LFS client -------------------------------------------------------------------------

LFS_JSON = "application/vnd.git-lfs+json"
LFS_BATCH_SIZE = 100
MAX_LFS_JSON_BYTES = 16 * 1024 * 1024


def lfs_endpoint(url: str) -> str:
    """The Git LFS server of a git remote, as git-lfs derives it (`<repo>.git/info/lfs`;
    for ssh, the same path over https)."""
    remote = remote_url_check(url)
    base = remote.url.rstrip("/")
    if remote.is_ssh:
        parts = urlsplit(base)
        host = f"[{remote.host}]" if ":" in remote.host else remote.host
        base = f"https://{host}{parts.path}"
    if not base.endswith(".git"):
        base += ".git"
    return base + "/info/lfs"


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        self._tls = ssl.create_default_context()
        super().__init__(host, port, timeout=timeout, context=self._tls)
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        # Certificate and SNI are checked against the host name, not the address.
        self.sock = self._tls.wrap_socket(sock, server_hostname=self.host)


@dataclass
class LfsObjectAction:
    oid: str
    size: int
    href: str | None
    headers: dict[str, str]
    verify: dict[str, Any] | None
    error: str | None


class LfsClient:
    """The basic transfer of the Git LFS batch API, over connections pinned to checked
    addresses. Every href a server hands out is checked like the mirror's own address,
    and the stored credential is only ever sent to the remote's own host."""

    def __init__(self, url: str, credential: Credential | None = None, *, timeout: int | None = None) -> None:
        self.endpoint = lfs_endpoint(url)
        self.host = urlsplit(self.endpoint).hostname
        self.credential = credential
        self.timeout = timeout or settings.FABHUB_MIRROR_TIMEOUT_S

    def _connection(self, url: str) -> tuple[http.client.HTTPConnection, str]:
        if urlsplit(url).scheme not in ("http", "https"):
            raise RemoteError(
                f"The LFS server sent an address that is not http(s): {url[:100]!r}.", retryable=False
            )
        try:
            remote = remote_url_check(url)
            address = remote_addresses(remote)[0]
        except ValidationError as exc:
            raise RemoteError(exc.message, retryable=False) from None
        parts = urlsplit(remote.url)
        kind = _PinnedHTTPSConnection if remote.scheme == "https" else _PinnedHTTPConnection
        path = parts.path or "/"
        return kind(remote.host, remote.port, address, self.timeout), path

    def _headers(self, url: str, given: dict[str, str] | None = None) -> dict[str, str]:
        headers = dict(given or {})
        if not any(k.lower() == "authorization" for k in headers) and self.credential is not None:
            if urlsplit(url).hostname == self.host:
                headers["Authorization"] = self.credential.authorization()
        return headers

    def _request(
        self, method: str, url: str, *, headers: dict[str, str], body: bytes | IO[bytes] | None = None
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        connection, path = self._connection(url)
        try:
            connection.request(method, path, body=body, headers=headers)
            return connection, connection.getresponse()
        except (OSError, ValueError, http.client.HTTPException) as exc:
            # ValueError: http.client refuses header values with line breaks.
            connection.close()
            raise RemoteError(f"Could not reach the LFS server at {self.host}: {exc}.") from None

    def _json(
        self, method: str, url: str, payload: dict[str, Any], headers: dict[str, str]
    ) -> dict[str, Any]:
        body = json.dumps(payload).encode()
        headers = {**self._headers(url, headers), "Accept": LFS_JSON, "Content-Type": LFS_JSON}
        connection, response = self._request(method, url, headers=headers, body=body)
        try:
            data = response.read(MAX_LFS_JSON_BYTES + 1)
            status = response.status
        finally:
            connection.close()
        if status >= 300:
            message = _lfs_message(data) or f"HTTP {status}"
            raise RemoteError(
                f"The LFS server at {self.host} refused: {message}.",
                retryable=status >= 500 or status == 429,
            )
        if len(data) > MAX_LFS_JSON_BYTES:
            raise RemoteError("The LFS server's answer is too large.", retryable=False)
        try:
            answer = json.loads(data or b"{}")
        except ValueError:
            raise RemoteError(
                f"The LFS server at {self.host} did not answer in JSON.", retryable=False
            ) from None
        if not isinstance(answer, dict):
            raise RemoteError(f"The LFS server at {self.host} sent an unexpected answer.", retryable=False)
        return answer

    def batch(self, operation: str, objects: list[tuple[str, int]]) -> list[LfsObjectAction]:
        """Ask about `objects` (oid, size) in batches; one action (or error) per object."""
        found: list[LfsObjectAction] = []
        for start in range(0, len(objects), LFS_BATCH_SIZE):
            chunk = objects[start : start + LFS_BATCH_SIZE]
            answer = self._json(
                "POST",
                f"{self.endpoint}/objects/batch",
                {
                    "operation": operation,
                    "transfers": ["basic"],
                    "objects": [{"oid": o, "size": s} for o, s in chunk],
                },
                {},
            )
            for item in answer.get("objects") or []:
                found.append(_lfs_action(item, operation))
        return found

    @contextmanager
    def download(self, action: LfsObjectAction) -> Iterator[IO[bytes]]:
        """Yield the object's body as a stream (closed afterwards)."""
        href = _action_href(action)
        connection, response = self._request("GET", href, headers=self._headers(href, action.headers))
        try:
            if response.status != 200:
                raise RemoteError(
                    f"Downloading LFS object {action.oid[:12]}… failed: HTTP {response.status}.",
                    retryable=response.status >= 500 or response.status == 429,
                )
            yield response
        finally:
            connection.close()

    def upload(self, action: LfsObjectAction, body: IO[bytes]) -> None:
        href = _action_href(action)
        headers = {
            **self._headers(href, action.headers),
            "Content-Type": "application/octet-stream",
            "Content-Length": str(action.size),
        }
        connection, response = self._request("PUT", href, headers=headers, body=body)
        try:
            data = response.read(64 * 1024)
            status = response.status
        finally:
            connection.close()
        if status >= 300:
            raise RemoteError(
                f"Uploading LFS object {action.oid[:12]}… failed: {_lfs_message(data) or f'HTTP {status}'}.",
                retryable=status >= 500 or status == 429,
            )
        if action.verify and action.verify.get("href"):
            self._json(
                "POST",
                action.verify["href"],
                {"oid": action.oid, "size": action.size},
                dict(action.verify.get("header") or {}),
            )


def _lfs_message(data: bytes) -> str:
    try:
        message = json.loads(data).get("message")
    except (ValueError, AttributeError):
        return ""
    return str(message)[:300] if message else ""


def _action_href(action: LfsObjectAction) -> str:
    """Where to send or fetch the object; callers skip actions without one (nothing to do)."""
    if action.href is None:
        raise RemoteError(f"The remote gave no address for LFS object {action.oid[:12]}….", retryable=False)
    return action.href


def _lfs_action(item: Any, operation: str) -> LfsObjectAction:
    if not isinstance(item, dict):
        raise RemoteError("The LFS server sent a malformed object in its answer.", retryable=False)
    oid, size = str(item.get("oid", "")), item.get("size")
    if not isinstance(size, int):
        size = -1
    error = item.get("error")
    if isinstance(error, dict):
        return LfsObjectAction(
            oid, size, None, {}, None, str(error.get("message") or error.get("code") or "error")
        )
    actions = item.get("actions") or {}
    action = actions.get(operation) if isinstance(actions, dict) else None
    if not isinstance(action, dict) or not isinstance(action.get("href"), str):
        return LfsObjectAction(oid, size, None, {}, None, None)  # upload: the server has it already
    header = action.get("header")
    headers = header if isinstance(header, dict) else {}
    verify = actions.get("verify") if isinstance(actions.get("verify"), dict) else None
    return LfsObjectAction(
        oid, size, action["href"], {str(k): str(v) for k, v in headers.items()}, verify, None
    )
