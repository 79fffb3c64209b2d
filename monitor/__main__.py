"""``python -m monitor`` is the same as the ``schema-drift-monitor`` console script."""

import sys

from monitor.cli import main

sys.exit(main())
