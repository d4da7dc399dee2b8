"""`python -m capture_cli …`: the same as the `capture-bridge` command."""

import sys

from capture_cli.main import main

sys.exit(main())
