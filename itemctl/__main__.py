"""``python -m itemctl``."""

from itemctl.cli import main

raise SystemExit(main())
