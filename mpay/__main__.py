"""``python -m mpay``: the same as the ``mpay`` command."""

import sys

from mpay.cli.main import main

sys.exit(main())
