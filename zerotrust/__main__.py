"""``python -m zerotrust``."""

from zerotrust.cli import main

raise SystemExit(main())
