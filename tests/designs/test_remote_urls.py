"""Remote addresses for mirrors: only http(s) and ssh to public hosts, each bad address
refused with a reason, and git held to the addresses that were checked."""

from __future__ import annotations

import socket

import pytest
from django.urls import reverse

from designs import remotes
from designs.git import remote_env
from designs.models import Design, PushMirror
from designs.services import mirrors
from hub.exceptions import ValidationError
from tests.factories import DesignFactory

pytestmark = pytest.mark.django_db

PUBLIC_V4 = "93.184.216.34"


@pytest.fixture(autouse=True)
def public_dns(monkeypatch):
    """Names resolve to a public address without a network; localhost stays loopback."""
    real = socket.getaddrinfo

    def fake(host, port, *args, **kwargs):
        if host in ("localhost",) or host[0].isdigit() or ":" in host:
            return real(host, port, *args, **kwargs)
        if host.startswith("internal."):
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", port))]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (PUBLIC_V4, port))]

    monkeypatch.setattr(remotes.socket, "getaddrinfo", fake)


BAD_URLS = [
    ("", "Give the address"),
    ("file:///etc/passwd", "file://"),
    ("FILE:///srv/git/secret.git", "file://"),
    ("/srv/git/repo.git", "local paths"),
    ("../other-design.git", "local paths"),
    ("./repo", "local paths"),
    ("~/repo.git", "local paths"),
    ("ext::sh -c touch% /tmp/pwned", "spaces"),
    ("ext::sh", "ext::"),
    ("fd::17", "ext::"),
    ("https::https://example.org/x.git", "ext::"),
    ("--upload-pack=touch /tmp/pwned", "spaces"),
    ("--upload-pack=id", "option"),
    ("-oProxyCommand=id", "option"),
    ("ssh://-oProxyCommand=id/repo.git", "starts with '-'"),
    ("ssh://-o@example.org/repo.git", "ssh user name"),
    ("git://example.org/repo.git", "only http://"),
    ("ftp://example.org/repo.git", "only http://"),
    ("git@github.com:team/rover.git", "ssh://git@github.com/team/rover.git"),
    ("https://alice:secret@example.org/rover.git", "credential field"),
    ("https://fh_token@example.org/rover.git", "credential field"),
    ("ssh://git:secret@example.org/rover.git", "credential field"),
    ("https://example.org/rover.git\n[core]\nsshCommand=id", "control characters"),
    ("https://exa mple.org/rover.git", "spaces"),
    ("https://example.org:99999/rover.git", "port"),
    ("https://example.org/", "path is empty"),
    ("https://example.org/rover.git?ref=main", "query"),
    ("https://example.org/rover.git#main", "query"),
    ("https:///rover.git", "no host"),
    ("https://exa_mple.org/rover.git", "not valid"),
    ("http://127.0.0.1/rover.git", "loopback"),
    ("http://localhost:8000/rover.git", "loopback"),
    ("http://127.1/rover.git", "loopback"),
    ("http://2130706433/rover.git", "loopback"),
    ("http://[::1]/rover.git", "loopback"),
    ("http://[::ffff:127.0.0.1]/rover.git", "loopback"),
    ("http://0.0.0.0/rover.git", "unspecified"),
    ("http://10.1.2.3/rover.git", "private"),
    ("http://192.168.1.10/rover.git", "private"),
    ("http://172.16.0.5/rover.git", "private"),
    ("http://100.64.0.1/rover.git", "private"),
    ("http://169.254.169.254/latest/meta-data", "link-local"),
    ("http://[fe80::1]/rover.git", "link-local"),
    ("http://[fd00::1]/rover.git", "private"),
    ("http://224.0.0.1/rover.git", "multicast"),
    ("https://internal.example.org/rover.git", "private"),
]


@pytest.mark.parametrize(("url", "reason"), BAD_URLS, ids=[u or "empty" for u, _ in BAD_URLS])
def test_each_bad_remote_address_is_refused_with_a_reason(url, reason):
    with pytest.raises(ValidationError) as refused:
        remotes.remote_access(url)
    assert reason in refused.value.message


@pytest.mark.parametrize(("url", "reason"), BAD_URLS[:12], ids=[u or "empty" for u, _ in BAD_URLS[:12]])
def test_a_bad_address_creates_no_mirror(alice, alice_api, url, reason):
    response = alice_api.post(
        reverse("api-mirror-create"), {"slug": "copy", "url": url, "licence": "MIT"}, format="json"
    )
    assert response.status_code == 400, response.content
    assert not Design.objects.filter(slug="copy").exists()
    assert not (mirrors.repo_path("alice", "copy")).exists()


def test_a_bad_push_mirror_address_is_refused(alice, alice_api):
    DesignFactory(owner=alice, slug="rover")
    response = alice_api.post(
        reverse("api-design-push-mirrors", args=["alice", "rover"]),
        {"url": "http://169.254.169.254/x"},
        format="json",
    )
    assert response.status_code == 400 and "link-local" in response.json()["detail"]
    assert not PushMirror.objects.exists()


@pytest.mark.parametrize(
    "url",
    [
        "https://example.org/team/rover.git",
        "http://example.org:8080/team/rover",
        "ssh://git@example.org/team/rover.git",
        "ssh://example.org:2222/srv/rover.git",
        "https://Example.ORG/team/rover.git",
        f"https://{PUBLIC_V4}/rover.git",
        "https://[2606:4700::1]/rover.git",
        "https://bücher.example/rover.git",
    ],
)
def test_public_http_and_ssh_addresses_are_accepted(url):
    assert remotes.remote_access(url).url


def test_an_address_is_used_as_checked_lowercase_and_idna():
    assert (
        remotes.remote_url_check("HTTPS://Example.ORG/Team/Rover.git").url
        == "https://example.org/Team/Rover.git"
    )
    assert (
        remotes.remote_url_check("https://bücher.example/r.git").url == "https://xn--bcher-kva.example/r.git"
    )
    assert (
        remotes.remote_url_check("ssh://git@[2606:4700::1]:2222/r.git").url
        == "ssh://git@[2606:4700::1]:2222/r.git"
    )


def test_git_connects_only_to_the_addresses_that_were_checked():
    access = remotes.remote_access("https://example.org/team/rover.git")
    assert access.resolve == f"example.org:443:{PUBLIC_V4}"
    env = remote_env(access)
    config = {
        env[f"GIT_CONFIG_KEY_{i}"]: env[f"GIT_CONFIG_VALUE_{i}"] for i in range(int(env["GIT_CONFIG_COUNT"]))
    }
    assert config["http.curloptResolve"] == access.resolve
    assert config["http.followRedirects"] == "false"
    assert config["protocol.allow"] == "never" and env["GIT_ALLOW_PROTOCOL"] == "http:https:ssh"
    assert env["GIT_TERMINAL_PROMPT"] == "0" and env["GIT_CONFIG_NOSYSTEM"] == "1"
    assert config["credential.helper"] == ""


def test_ssh_connects_to_the_checked_address_and_checks_the_key_by_name():
    access = remotes.remote_access("ssh://git@example.org/team/rover.git")
    assert access.url == f"ssh://git@{PUBLIC_V4}/team/rover.git"
    assert access.ssh_host_alias == "example.org"
    assert "HostKeyAlias=example.org" in remote_env(access)["GIT_SSH_COMMAND"]


def test_a_credential_travels_in_a_header_never_in_the_address():
    access = remotes.remote_access("https://example.org/rover.git", remotes.Credential("alice", "fh_secret"))
    assert "fh_secret" not in access.url and "alice" not in access.url
    assert access.auth_header.startswith("Authorization: Basic ")
    assert "fh_secret" not in " ".join(("fetch", access.url))


def test_ssh_remotes_take_no_stored_credential():
    with pytest.raises(ValidationError, match="hub's own ssh key"):
        remotes.remote_access("ssh://git@example.org/rover.git", remotes.Credential("git", "x"))


def test_private_networks_may_be_allowed_explicitly(settings):
    settings.FABHUB_MIRROR_ALLOW_PRIVATE_NETWORKS = True
    assert remotes.remote_access("http://127.0.0.1:8000/alice/rover.git").resolve is None


def test_a_host_in_the_allow_list_may_be_private_and_others_are_refused(settings):
    settings.FABHUB_MIRROR_ALLOWED_HOSTS = ["*.example.org", "git.lab.test"]
    assert remotes.remote_access("https://internal.example.org/rover.git")
    with pytest.raises(ValidationError, match="only from and to"):
        remotes.remote_access("https://gitlab.com/rover.git")


def test_a_denied_host_is_refused(settings):
    settings.FABHUB_MIRROR_DENIED_HOSTS = ["github.com", "*.evil.test"]
    for url in ("https://github.com/x/y.git", "https://a.b.evil.test/y.git"):
        with pytest.raises(ValidationError, match="do not allow"):
            remotes.remote_access(url)
    assert remotes.remote_access("https://gitlab.com/x/y.git")


def test_lfs_hrefs_from_a_remote_are_checked_like_the_remote_itself():
    client = remotes.LfsClient("https://example.org/rover.git")
    assert client.endpoint == "https://example.org/rover.git/info/lfs"
    for href in ("http://169.254.169.254/latest", "file:///etc/passwd", "http://localhost/x"):
        with pytest.raises(remotes.RemoteError) as refused:
            client._connection(href)
        assert not refused.value.retryable


def test_the_lfs_endpoint_of_an_ssh_remote_is_https():
    assert (
        remotes.lfs_endpoint("ssh://git@example.org/team/rover")
        == "https://example.org/team/rover.git/info/lfs"
    )
