"""manage.py verify_record FILE [--online]: check a signed record (docs/portability.md).

Exit status 0 when the record verifies, 1 when it does not (the reason is printed), so a
script can act on it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from hub import records
from hub.exceptions import ValidationError


class Command(BaseCommand):
    help = "Check a signed record: its signature and issuer key; with --online, its revocation status."

    def add_arguments(self, parser):
        parser.add_argument("file", help="the record (JSON), or - for standard input")
        parser.add_argument("--online", action="store_true", help="also read the issuer's revocation list")
        parser.add_argument("--json", dest="as_json", action="store_true", help="print the report as JSON")

    def handle(self, *args, file: str, online: bool, as_json: bool, **options):
        try:
            raw = sys.stdin.buffer.read(records.MAX_RECORD_BYTES + 1) if file == "-" else _read(Path(file))
            document = records.parse_record(raw)
        except (OSError, ValidationError) as exc:
            raise CommandError(str(exc)) from None
        report = records.credential_verify(document, online=online)
        if as_json:
            self.stdout.write(json.dumps(report.as_dict(), indent=2))
        else:
            self.stdout.write(
                f"{report.status}: issuer {report.issuer or '?'}, subject {report.subject or '?'}"
            )
            for check in report.checks:
                self.stdout.write(f"  {'ok  ' if check.ok else 'FAIL'} {check.name}: {check.detail}")
        if not report.verified:
            sys.exit(1)


def _read(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.read(records.MAX_RECORD_BYTES + 1)
