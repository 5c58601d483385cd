"""The baseline: plain `git http-backend` behind a minimal WSGI-to-CGI wrapper.

No authentication, no Django: what serving git over HTTP costs at the least. Served by
the same gunicorn settings as the hub so the comparison is of the application only.
Repositories are found under GIT_PROJECT_ROOT.
"""

from __future__ import annotations

import os
import subprocess
import threading

CHUNK = 64 * 1024


def application(environ, start_response):
    env = {
        "PATH": os.environ["PATH"],
        "GIT_PROJECT_ROOT": os.environ["GIT_PROJECT_ROOT"],
        "GIT_HTTP_EXPORT_ALL": "1",
        "REMOTE_USER": "bench",
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "http.receivepack",
        "GIT_CONFIG_VALUE_0": "true",
    }
    for key in (
        "REQUEST_METHOD",
        "PATH_INFO",
        "QUERY_STRING",
        "CONTENT_TYPE",
        "CONTENT_LENGTH",
        "HTTP_CONTENT_ENCODING",
        "HTTP_GIT_PROTOCOL",
    ):
        if environ.get(key):
            env[key] = environ[key]
    proc = subprocess.Popen(["git", "http-backend"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    body = environ["wsgi.input"]

    def pump():
        while chunk := body.read(CHUNK):
            proc.stdin.write(chunk)
        proc.stdin.close()

    threading.Thread(target=pump, daemon=True).start()
    status, headers = "200 OK", []
    while (line := proc.stdout.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        if name.lower() == "status":
            status = value.strip()
        else:
            headers.append((name, value.strip()))
    start_response(status, headers)

    def stream():
        while chunk := proc.stdout.read1(CHUNK):
            yield chunk
        proc.wait()

    return stream()
