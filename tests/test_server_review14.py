"""Issue 14 review: attacks on ``zerotrust serve`` as an operator runs it, each test
named after the attack it stops."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zerotrust import PolicyDecisionPoint
from zerotrust.behavior.redis import _shown_url
from zerotrust.server.configbase import ServerConfigError, masked_url
from zerotrust.server.reload import Reloader
from zerotrust.server.settings import printed, resolve

ROOT = Path(__file__).resolve().parents[1]
SECRET = "pep-secret-0123456789abcdef"


def policy(effect: str) -> str:
    return f"policy: p\ntarget: {{resources: [doc]}}\nrules:\n  - id: r\n    effect: {effect}\n"


# -- an empty secrets file must not leave the server without authentication ----------


def test_an_empty_bearer_secrets_file_is_refused_not_served_unauthenticated(
    tmp_path: Path,
) -> None:
    # It used to start with no secret and insecure_local false: every loopback caller
    # (a TLS proxy on the same host, a sidecar in the pod) was served unauthenticated.
    empty = tmp_path / "secrets"
    empty.write_text("")
    with pytest.raises(ServerConfigError) as caught:
        resolve(None, environ={"ZEROTRUST_BEARER_SECRETS_FILE": str(empty)})
    assert caught.value.problems == (
        "ZEROTRUST_BEARER_SECRETS_FILE (bearer_secrets_file): holds no secret (one a line)",
    )
    with pytest.raises(ServerConfigError):
        resolve(None, environ={"ZEROTRUST_BEARER_SECRETS_FILE": os.devnull})


@settings(max_examples=40, deadline=None)
@given(blank=st.lists(st.sampled_from(["", " ", "\t", "\r"]), max_size=5))
def test_a_secrets_file_of_blank_lines_never_yields_a_server_without_a_secret(
    tmp_path_factory: pytest.TempPathFactory, blank: list[str]
) -> None:
    file = tmp_path_factory.mktemp("s") / "secrets"
    file.write_text("\n".join(blank))
    with pytest.raises(ServerConfigError, match="holds no secret"):
        resolve(None, environ={"ZEROTRUST_BEARER_SECRETS_FILE": str(file)})


def test_a_secrets_file_with_a_secret_still_works(tmp_path: Path) -> None:
    file = tmp_path / "secrets"
    file.write_text(f"\n{SECRET}\n\n")
    config = resolve(None, environ={"ZEROTRUST_BEARER_SECRETS_FILE": str(file)})
    assert config.bearer_secrets == (SECRET,)


# -- a Redis password given as a query argument ----------------------------------------


def test_a_redis_password_in_the_query_is_hidden_by_print_config_repr_and_messages() -> None:
    url = "redis://127.0.0.1:6379/0?password=hunter2-hunter2&db=0"
    config = resolve(
        None, environ={"ZEROTRUST_BEARER_SECRETS": SECRET, "ZEROTRUST_BEHAVIOR__STORE": url}
    )
    assert "hunter2" not in printed(config)
    assert "hunter2" not in repr(config.behavior)
    assert "hunter2" not in _shown_url(url)
    assert masked_url(url) == "redis://127.0.0.1:6379/0?password=***&db=0"


_PASSWORDS = st.text(st.characters(whitelist_categories=("L", "N")), min_size=6, max_size=20)


@settings(max_examples=100, deadline=None)
@given(password=_PASSWORDS, name=st.sampled_from(["password", "PASSWORD", "Password"]))
def test_a_redis_url_password_never_survives_masking(password: str, name: str) -> None:
    for url in (
        f"redis://h:6379/0?{name}={password}",
        f"rediss://user:{password}@h:6380/0",
        f"redis+cluster://h:7000?db=0&{name}={password}",
    ):
        assert password not in masked_url(url)
        assert password not in _shown_url(url)


# -- a watched policy directory deleted and made again ----------------------------------


def test_watch_sees_a_policy_directory_deleted_and_made_again(tmp_path: Path) -> None:
    # A watch follows the directory it began on: after `rm -rf` and a fresh copy it
    # saw nothing more, silently, and the old set stayed in force for ever.
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "p.yaml").write_text(policy("allow"))
    pdp = PolicyDecisionPoint.from_path(folder)
    first = pdp.revision
    reloader = Reloader(pdp, [folder], debounce_ms=50)
    reloader.start()
    try:
        time.sleep(0.5)
        shutil.rmtree(folder)
        time.sleep(1.5)
        folder.mkdir()
        (folder / "p.yaml").write_text(policy("deny"))
        wanted = PolicyDecisionPoint.from_path(folder).revision
        deadline = time.monotonic() + 15
        while pdp.revision != wanted and time.monotonic() < deadline:
            time.sleep(0.1)
        assert pdp.revision == wanted != first
        (folder / "p.yaml").write_text(policy("allow"))
        deadline = time.monotonic() + 15
        while pdp.revision != first and time.monotonic() < deadline:
            time.sleep(0.1)
        assert pdp.revision == first  # and it is watched again
    finally:
        reloader.stop()


# -- a PROMETHEUS_MULTIPROC_DIR inherited from the environment -------------------------


@pytest.mark.skipif(sys.platform != "linux", reason="signals")
def test_an_inherited_multiprocess_dir_is_neither_used_nor_fatal(tmp_path: Path) -> None:
    # It was used by a one-process server: counts mixed with any other server's there,
    # kept after death, no process metrics; and a missing one stopped the start-up.
    import http.client
    import socket

    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "p.yaml").write_text(policy("allow"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    shared = tmp_path / "shared"
    shared.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZEROTRUST_")}
    env["PYTHONPATH"] = str(ROOT)
    results = {}
    for label, directory in (("missing", tmp_path / "gone"), ("shared", shared)):
        env["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
        command = [sys.executable, "-m", "zerotrust", "serve", "--policies", str(folder)]
        command += ["--insecure-local", "--port", str(port)]
        process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE)
        try:
            text = ""
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and process.poll() is None:
                try:
                    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                    connection.request("GET", "/metrics")
                    text = connection.getresponse().read().decode()
                    connection.close()
                    break
                except OSError:
                    time.sleep(0.1)
            results[label] = text
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            process.communicate(timeout=30)
    assert "process_resident_memory_bytes" in results["missing"]
    assert "process_resident_memory_bytes" in results["shared"]
    assert list(shared.iterdir()) == []
