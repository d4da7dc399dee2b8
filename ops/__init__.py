"""The operator's command line for a deployed bridge: `python -m ops --help`.

Not shipped in the Lambda layer: it runs on an operator's machine with their AWS credentials.
It reads the layer's own package (settings rules, integration registries, access probes), so
that what it checks is exactly what the functions do.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYER = ROOT / "layers" / "bridge"

# `python -m ops` from the project root finds `ops` but not the layer's package; put it on the path.
if str(LAYER) not in sys.path:
    sys.path.insert(0, str(LAYER))
