"""The one address policy for outbound connections (hub/outbound.py). Every refusal is
decided before any connection; the suite's guard (tests/conftest.py) fails any test that
would connect off this machine."""

from __future__ import annotations

import http.server
import ipaddress
import socket
import threading

import pytest
import requests

from hub.outbound import GuardedSession, OutboundRefused, address_refusal, checked_addresses

REFUSED = [
    "127.0.0.1",
    "10.1.2.3",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "100.64.0.1",  # carrier-grade NAT
    "224.0.0.1",
    "0.0.0.0",
    "240.0.0.1",
    "198.18.0.1",
    "192.0.2.1",
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "fd12:3456::1",
    "ff02::1",
    "::ffff:10.0.0.1",  # IPv4-mapped
    "::ffff:127.0.0.1",
    "::127.0.0.1",  # IPv4-compatible
    "::a00:1",
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "64:ff9b:1::1",  # local-use NAT64
    "2002:a00:1::1",  # 6to4 of 10.0.0.1
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2001:0:4136:e378:8000:63bf:f5ff:fffe",  # Teredo, client 10.0.0.1
]

ALLOWED = ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "64:ff9b::808:808"]


@pytest.mark.parametrize("text", REFUSED)
def test_every_non_global_address_is_refused_including_ipv6_forms_that_carry_one(text):
    assert address_refusal(ipaddress.ip_address(text)) is not None


@pytest.mark.parametrize("text", ALLOWED)
def test_global_addresses_are_allowed(text):
    assert address_refusal(ipaddress.ip_address(text)) is None


def test_the_operator_allows_a_lab_network_and_only_that_one():
    lan = [ipaddress.ip_network("192.168.1.0/24")]
    assert address_refusal(ipaddress.ip_address("192.168.1.20"), allowed=lan) is None
    assert address_refusal(ipaddress.ip_address("192.168.2.20"), allowed=lan) is not None
    assert address_refusal(ipaddress.ip_address("169.254.169.254"), allowed=lan) is not None


def test_a_name_is_resolved_once_and_every_address_checked(monkeypatch):
    answers = [[("203.0.113.1",), ("10.0.0.5",)]]  # one public-looking, one private

    def fake_getaddrinfo(host, port, *args, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a[0], port)) for a in answers[0]]

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    with pytest.raises(OutboundRefused, match="10.0.0.5"):
        checked_addresses("printer.example", 80, allowed=[ipaddress.ip_network("203.0.113.0/24")])


def test_a_refused_address_is_never_connected_to(monkeypatch):
    attempts = []
    real = socket.create_connection
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: attempts.append(a) or real(*a, **k))
    for url in ("http://10.0.0.1/api/version", "http://[::ffff:169.254.169.254]/", "http://localhost:9/"):
        with pytest.raises(requests.ConnectionError, match="address policy"):
            GuardedSession(allowed=()).get(url)
    assert attempts == []


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
            self.end_headers()
            return
        body = b"x" * (2 * 1024 * 1024) if self.path == "/big" else self.headers["Host"].encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def local_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()


LOOPBACK = [ipaddress.ip_network("127.0.0.0/8")]


def test_redirects_are_answers_never_followed(local_server):
    response = GuardedSession(allowed=LOOPBACK).get(f"http://127.0.0.1:{local_server}/redirect")
    assert response.status_code == 302  # and no connection to the metadata address


def test_answers_over_the_cap_are_refused(local_server):
    session = GuardedSession(allowed=LOOPBACK, max_response_bytes=1024 * 1024)
    with pytest.raises(requests.RequestException, match="larger than"):
        session.get(f"http://127.0.0.1:{local_server}/big")


def test_the_connection_goes_to_the_checked_address_whatever_dns_says_later(local_server, monkeypatch):
    calls = []

    real_getaddrinfo = socket.getaddrinfo

    def rebinding_getaddrinfo(host, port, *args, **kwargs):
        if host != "printer.lab":
            return real_getaddrinfo(host, port, *args, **kwargs)  # the pinned literal
        calls.append(host)
        # First answer: loopback (allowed here); any later one would be the metadata address.
        address = "127.0.0.1" if len(calls) == 1 else "169.254.169.254"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding_getaddrinfo)
    response = GuardedSession(allowed=LOOPBACK).get(f"http://printer.lab:{local_server}/")
    assert response.status_code == 200
    assert response.text == f"printer.lab:{local_server}"  # the name kept in Host
    assert calls == ["printer.lab"]  # resolved once, by the policy; never again


def test_the_printer_driver_goes_through_the_policy():
    from machines.printing.drivers import PrinterError
    from machines.printing.drivers.octoprint import OctoPrintDriver

    driver = OctoPrintDriver("http://169.254.169.254/", "key", session=GuardedSession())
    with pytest.raises(PrinterError, match="does not connect") as refused:
        driver.status()
    assert refused.value.retryable is False


def test_the_suite_refuses_connections_off_this_machine():
    from tests.conftest import NonLoopbackConnection

    with socket.socket() as sock, pytest.raises(NonLoopbackConnection):
        sock.connect(("192.0.2.1", 80))
