"""``python -m apem``: the `apem` command."""

from apem.cli import main

raise SystemExit(main())
