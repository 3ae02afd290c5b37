"""zerotrust.client's public surface: every name exported, every error rooted and
exported, and the client importable without any server or web dependency."""

from __future__ import annotations

import inspect
import subprocess
import sys

import zerotrust.client
import zerotrust.client.errors
from zerotrust.errors import ZeroTrustError


def test_all_names_exist() -> None:
    for name in zerotrust.client.__all__:
        assert hasattr(zerotrust.client, name), name


def test_every_error_is_exported_rooted_and_builtin() -> None:
    for name, obj in inspect.getmembers(zerotrust.client.errors, inspect.isclass):
        if issubclass(obj, Exception) and obj.__module__ == "zerotrust.client.errors":
            assert name in zerotrust.client.__all__, name
            assert issubclass(obj, ZeroTrustError), name
            builtins = [b for b in obj.__mro__ if b.__module__ == "builtins"]
            assert builtins[0] is not Exception or name == "PDPError", name


def test_the_client_needs_only_httpx() -> None:
    code = (
        "import sys, zerotrust.client; "
        "heavy = ('starlette', 'uvicorn', 'flask', 'django', 'redis', 'zerotrust.server', "
        "'zerotrust.web'); print([m for m in heavy if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
