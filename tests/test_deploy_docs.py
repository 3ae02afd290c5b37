"""docs/deploy.md and examples/deploy/: the configuration shown is the one shipped, and
``zerotrust serve --print-config`` accepts it with the secrets it names."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml

from zerotrust.cli import main

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "examples" / "deploy"


def test_the_page_shows_the_shipped_configuration() -> None:
    page = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    [shown] = re.findall(r"^```yaml\n(.*?)^```", page, re.S | re.M)
    shipped = (DEPLOY / "server.yaml").read_text(encoding="utf-8")
    assert yaml.safe_load(shown) == yaml.safe_load(shipped)


def test_the_shipped_configuration_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "pep-secrets").write_text("pep-secret-0123456789abcdef\n", encoding="utf-8")
    (tmp_path / "paging-secret").write_text("p" * 44 + "\n", encoding="utf-8")
    for name in list(os.environ):
        if name.startswith("ZEROTRUST_"):
            monkeypatch.delenv(name)
    # As systemd's unit and the compose file give them: the secrets' files by variable.
    monkeypatch.setenv("ZEROTRUST_BEARER_SECRETS_FILE", str(tmp_path / "pep-secrets"))
    monkeypatch.setenv("ZEROTRUST_PAGING_SECRET_FILE", str(tmp_path / "paging-secret"))
    monkeypatch.setenv("ZEROTRUST_POLICIES", str(ROOT / "policies"))
    status = main(["serve", "--config", str(DEPLOY / "server.yaml"), "--print-config"])
    out = capsys.readouterr()
    assert status == 0, out.err
    config = yaml.safe_load(out.out)
    assert config["bearer_secrets"] == ["***"] and config["paging_secret"] == "***"
    assert config["behavior"]["store"] == "redis://redis:6379/0"
    assert config["decision_log_sink"] == "stdout" and config["workers"] == 2


def test_the_systemd_unit_and_compose_file_name_the_same_secrets() -> None:
    unit = (DEPLOY / "zerotrust.service").read_text(encoding="utf-8")
    assert "ExecReload=/bin/kill -HUP $MAINPID" in unit
    assert "ZEROTRUST_BEARER_SECRETS_FILE" in unit and "ZEROTRUST_PAGING_SECRET_FILE" in unit
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    assert set(compose["secrets"]) == {"pep-secrets", "paging-secret"}
    served = yaml.safe_load((DEPLOY / "server.yaml").read_text(encoding="utf-8"))
    assert served["bearer_secrets_file"] == "/run/secrets/pep-secrets"
    assert served["paging_secret_file"] == "/run/secrets/paging-secret"
