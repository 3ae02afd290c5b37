"""Everything public is exported, and the core imports no adapter."""

from __future__ import annotations

import inspect
import subprocess
import sys

import zerotrust
import zerotrust.errors


def test_all_names_exist() -> None:
    for name in zerotrust.__all__:
        assert hasattr(zerotrust, name), name


def test_every_exception_is_exported_and_rooted() -> None:
    for name, obj in inspect.getmembers(zerotrust.errors, inspect.isclass):
        if issubclass(obj, Exception):
            assert name in zerotrust.__all__, name
            assert issubclass(obj, zerotrust.ZeroTrustError), name


def test_import_is_light() -> None:
    code = (
        "import sys, zerotrust; "
        "heavy = ('redis', 'starlette', 'flask', 'httpx', 'uvicorn', 'jwt'); "
        "bad = [m for m in heavy if m in sys.modules]; "
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
