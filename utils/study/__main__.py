"""`python -m utils.study`: see utils/study/__init__.py."""

import sys

from .cli import main

sys.exit(main())
