"""`python -m promotion_service` runs the CLI."""

import sys

from .cli import main

sys.exit(main())
