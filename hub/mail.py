"""Sending e-mail: the hub's one adapter for Django's mail backend.

A mail server that is down or refuses us must not turn a password reset or a
notification into a 500, nor fill the log with tracebacks (`make run` has no SMTP
server): the failure is logged as one line and the caller learns it from the result.
"""

from __future__ import annotations

import logging

from django.core.mail import send_mail

logger = logging.getLogger(__name__)


def send(*, to: str, subject: str, body: str) -> bool:
    """Send one plain-text message; True if the backend took it."""
    try:
        send_mail(subject, body, None, [to])
    except OSError as exc:  # smtplib's errors and socket errors alike
        logger.warning("E-mail %r to %s not sent: %s", subject, to, exc or type(exc).__name__)
        return False
    return True
