"""``zerotrust serve``'s logging: the zerotrust loggers at the configured level, as text
or one JSON object a line; applied in a child process (logging is process-wide)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from zerotrust.server.config import ServerConfigError
from zerotrust.server.runner import logging_config

ROOT = Path(__file__).resolve().parents[1]
CHILD = """
import logging, logging.config, sys
from zerotrust.server.runner import logging_config
logging.config.dictConfig(logging_config(sys.argv[1], sys.argv[2]))
log = logging.getLogger("zerotrust.server")
log.debug("debug line")
log.info("reloaded %s", "rev-1", extra={"request_id": "r-1"})
log.warning("w\\u00e9ird \\"quoted\\"\\nline")
logging.getLogger("uvicorn.error").info("uvicorn line")
"""


def run(level: str, log_format: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, level, log_format],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
        timeout=60,
    )
    return [line for line in done.stderr.splitlines() if line]


def test_json_lines_carry_the_record_and_its_extra() -> None:
    lines = [json.loads(line) for line in run("DEBUG", "json")]
    assert [(x["levelname"], x["name"]) for x in lines] == [
        ("DEBUG", "zerotrust.server"),
        ("INFO", "zerotrust.server"),
        ("WARNING", "zerotrust.server"),
        ("INFO", "uvicorn.error"),
    ]
    assert lines[1]["message"] == "reloaded rev-1" and lines[1]["request_id"] == "r-1"
    assert lines[2]["message"] == 'wéird "quoted"\nline'  # one line, escaped
    assert all({"asctime", "process"} <= set(x) for x in lines)


def test_the_level_hides_what_is_below_it() -> None:
    assert run("INFO", "text") == [
        "INFO:     reloaded rev-1",
        'WARNING:  wéird "quoted"',
        "line",
        "INFO:     uvicorn line",
    ]
    warning_and_up = run("WARNING", "json")
    assert [json.loads(line)["levelname"] for line in warning_and_up] == ["WARNING"]


@pytest.mark.parametrize(("level", "log_format"), [("info", "text"), ("INFO", "xml"), ("", "")])
def test_bad_level_or_format_is_one_line_naming_it(level: str, log_format: str) -> None:
    with pytest.raises(ServerConfigError, match=r"log_level|log_format") as refused:
        logging_config(level, log_format)
    assert "\n" not in str(refused.value)
