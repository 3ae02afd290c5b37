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
    assert set(dir(zerotrust)) >= set(zerotrust.__all__)


def test_names_load_on_first_use() -> None:
    """``import zerotrust`` loads no engine (the CLI's ``--version``, the pytest plugin);
    the first name used loads its module, and a name not exported is an AttributeError."""
    code = (
        "import sys, zerotrust; "
        "print('zerotrust.engine' in sys.modules); "
        "zerotrust.PolicyDecisionPoint; "
        "print('zerotrust.engine' in sys.modules); "
        "from zerotrust import *; "
        "print(sorted(n for n in zerotrust.__all__ if n not in globals()))\n"
        "try:\n    zerotrust.nothing_here\nexcept AttributeError as e:\n    print(e)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == [
        "False",
        "True",
        "[]",
        "module 'zerotrust' has no attribute 'nothing_here'",
    ]


def test_every_exception_is_exported_and_rooted() -> None:
    for name, obj in inspect.getmembers(zerotrust.errors, inspect.isclass):
        if issubclass(obj, Exception):
            assert name in zerotrust.__all__, name
            assert issubclass(obj, zerotrust.ZeroTrustError), name


def test_import_is_light() -> None:
    code = (
        "import sys, zerotrust; "
        "zerotrust.PolicyDecisionPoint, zerotrust.RedisBehaviorStore; "
        "heavy = ('redis', 'starlette', 'flask', 'httpx', 'uvicorn', 'jwt'); "
        "bad = [m for m in heavy if m in sys.modules]; "
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
