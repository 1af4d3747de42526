"""A configuration file never holds a credential: every secret-bearing setting names an environment
variable (its `*_env` twin), a value shaped like a credential is refused whatever its key is called, and the
refusal names the key without ever echoing the value."""

from __future__ import annotations

from pathlib import Path

import pytest

from driftwatch.cli import run_cli
from driftwatch.config import load_config
from driftwatch.errors import UserError

KEY = "pk_2b9c8e7f6a5d4c3b2a1f0e9d8c7b6a5d4c"
SLACK = "https://hooks.slack.com/services/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"

REFUSED = {
    "an SFTP URL with its password": (
        '[sources.bluecherry]\nsftp_url = "sftp://exports:Hunter2-2026@ftp.example/out"\n',
        "sources.bluecherry.sftp_url",
        "Hunter2-2026",
    ),
    "a Slack webhook as a literal alert URL": (
        f'[[alerts.routes]]\nname = "cx"\nurls = ["{SLACK}"]\n',
        "alerts.routes[0].urls",
        "aB1cD2eF3gH4iJ5kL6mN7oP8",
    ),
    "Slack tokens in an apprise URL": (
        '[[alerts.routes]]\nname = "cx"\nurls = ["slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#ops"]\n',
        "alerts.routes[0].urls",
        "TIiajkdnlazkcOXrIdevi7FQ",
    ),
    "a mail password in an alert URL": (
        '[[alerts.routes]]\nname = "cx"\nurls = ["mailtos://ops:mail-pass-42@smtp.example?to=cx@example.com"]\n',
        "alerts.routes[0].urls",
        "mail-pass-42",
    ),
    "an inline credentials table": (
        f'[sources.klaviyo]\napi_key_env = "KLAVIYO_API_KEY"\n[sources.klaviyo.credentials]\napi_key = "{KEY}"\n',
        "sources.klaviyo.credentials",
        KEY,
    ),
    "api_key as a list": (f'[sources.klaviyo]\napi_key = ["{KEY}"]\n', "sources.klaviyo.api_key", KEY),
    "a secret pasted as the name of its variable": (
        f'[sources.klaviyo]\napi_key_env = "{KEY}"\n',
        "sources.klaviyo.api_key_env",
        KEY,
    ),
    "a URL pasted as the name of its variable": (
        f'[[alerts.routes]]\nname = "cx"\nurl_env = ["{SLACK}"]\n',
        "url_env",
        "aB1cD2eF3gH4iJ5kL6mN7oP8",
    ),
    "a high-entropy token under an innocent key": (
        '[sources.mirakl]\nbase_url = "https://m.example"\nshop_id = "a1b2c3d4-e5f6-4789-abcd-0123456789ab"\n',
        "sources.mirakl.shop_id",
        "a1b2c3d4-e5f6-4789-abcd-0123456789ab",
    ),
    "a key with a known prefix under an innocent key": (
        f'[sources.klaviyo]\nrevision = "{KEY}"\n',
        "sources.klaviyo.revision",
        KEY,
    ),
    "a token in a report link": (
        '[report]\nlink_base = "https://intranet.example/driftwatch/?token=Zx81Qa77Lm"\n',
        "report.link_base",
        "Zx81Qa77Lm",
    ),
    "a token in a feed": (
        '[[feeds]]\nsource = "bluecherry"\ntarget = "klaviyo"\nchannels = ["ghp_0123456789abcdefghijABCDEFGHIJ"]\n',
        "feeds[0].channels",
        "ghp_0123456789abcdefghijABCDEFGHIJ",
    ),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_credential_in_the_file_is_refused_by_its_shape_and_never_echoed(tmp_path: Path, case: str, capfd):
    text, key, secret = REFUSED[case]
    path = tmp_path / "driftwatch.toml"
    path.write_text(text)
    with pytest.raises(UserError) as refused:
        load_config(path)
    message = str(refused.value)
    assert key in message and secret not in message
    assert "secrets never go in this file" in message or "name of an environment variable" in message
    # The command line says the same in one place, and nothing else shows the value either.
    assert run_cli(["--config", str(path), "checks", "list"]) == 2
    out, err = capfd.readouterr()
    assert key in err and secret not in out + err and "Traceback" not in err


def test_the_env_twins_and_secret_free_urls_are_accepted(tmp_path: Path):
    path = tmp_path / "driftwatch.toml"
    path.write_text(
        "[sources.bluecherry]\n"
        'sftp_url = "sftp://exports@ftp.example/out"\n'
        'sftp_password_env = "BLUECHERRY_SFTP_PASSWORD"\n'
        "[sources.commercetools]\n"
        'base_url = "https://api.europe-west1.gcp.commercetools.com"\n'
        'project = "acme-eu-prod"\n'
        'client_id_env = "CTP_CLIENT_ID"\n'
        'client_secret_env = "CTP_CLIENT_SECRET"\n'
        "[report]\n"
        'link_base = "https://intranet.example/driftwatch/reports-2026/"\n'
        "[[alerts.routes]]\n"
        'name = "cx"\n'
        'url_env = ["DRIFTWATCH_CX_SLACK"]\n'
        'urls = ["mailto://relay.internal?to=cx@example.com"]\n'
    )
    cfg = load_config(path)
    assert cfg.source("bluecherry")["sftp_password_env"] == "BLUECHERRY_SFTP_PASSWORD"
