"""What the admin sees: secrets masked everywhere, JSON alone on stdout, a bar only on a terminal."""

from __future__ import annotations

import io
import json

from mmupgrade.context import Context, Options, Runtime
from mmupgrade.output import Reporter, result
from mmupgrade.progress import Progress
from mmupgrade.redact import Secrets, mask_data_source

DSN = "postgres://mmuser:S3cr%40t-pass@db.example.com:5432/mattermost?sslmode=disable"


def test_mask_data_source() -> None:
    assert mask_data_source(DSN) == "postgres://mmuser:****@db.example.com:5432/mattermost?sslmode=disable"
    assert (
        mask_data_source("host=db user=mm password='a b' dbname=x")
        == "host=db user=mm password=**** dbname=x"
    )
    assert (
        mask_data_source("postgres://db/x?user=mm&password=secret1")
        == "postgres://db/x?user=mm&password=****"
    )


def test_secrets_are_masked_in_every_form() -> None:
    secrets = Secrets()
    secrets.add_data_source(DSN)
    text = f"dsn {DSN}; decoded S3cr@t-pass; encoded S3cr%40t-pass"
    redacted = secrets.redact(text)
    assert "S3cr" not in redacted
    assert "postgres://mmuser:****@db.example.com" in redacted


class TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_reporter_json_mode_keeps_stdout_for_the_object() -> None:
    stdout, stderr = io.StringIO(), io.StringIO()
    reporter = Reporter(json_mode=True, stdout=stdout, stderr=stderr)
    reporter.secrets.add_data_source(DSN)
    reporter.info(f"connecting with {DSN}")
    reporter.result(result("refused", 1, f"cannot reach {DSN}", "11.9.1", "11.10.0"))
    document = json.loads(stdout.getvalue())
    assert (
        document["message"]
        == "cannot reach postgres://mmuser:****@db.example.com:5432/mattermost?sslmode=disable"
    )
    assert "S3cr" not in stderr.getvalue() and "S3cr" not in stdout.getvalue()
    assert "connecting with" in stderr.getvalue()


def test_progress_bar_on_a_terminal_plain_lines_otherwise() -> None:
    tty = TTY()
    bar = Progress(tty, "downloading x", 4 * 1024 * 1024, tty=True)
    bar.update(2 * 1024 * 1024)
    bar.finish("downloaded x (4.0 MiB)")
    assert "\r" in tty.getvalue() and "[" in tty.getvalue() and "50%" in tty.getvalue()
    plain = io.StringIO()
    bar = Progress(plain, "downloading x", 100, tty=False)
    for done in range(0, 101, 5):
        bar.update(done)
    bar.finish("downloaded x")
    assert plain.getvalue().splitlines() == [
        "downloading x (100 B)...",
        "downloading x: 25%",
        "downloading x: 50%",
        "downloading x: 75%",
        "downloaded x",
    ]
    assert "\r" not in plain.getvalue()


def test_secrets_from_the_unit_environment() -> None:
    ctx = Context(Options(), Runtime(reporter=Reporter(stdout=io.StringIO(), stderr=io.StringIO())))
    # What discovery does with the unit's environment.
    ctx._register_secrets(
        {
            "MM_CONFIG": "/var/opt/mattermost/config/config.json",
            "MM_SQLSETTINGS_DATASOURCE": DSN,
            "MM_SQLSETTINGS_DATASOURCEREPLICAS": "postgres://ro:replica-pw1@r1/mm postgres://ro:replica-pw2@r2/mm",
            "MM_EMAILSETTINGS_SMTPPASSWORD": "smtp-secret-9",
        }
    )
    text = ctx.reporter.redact(
        f"{DSN} replica-pw1 replica-pw2 smtp-secret-9 config /var/opt/mattermost/config/config.json"
    )
    assert "S3cr" not in text and "replica-pw" not in text and "smtp-secret" not in text
    assert "/var/opt/mattermost/config/config.json" in text  # a path is no secret
