"""`python3 -m mmstandin ...` runs the stand-in exactly as `bin/mattermost ...` would."""

from __future__ import annotations

from .cli import main

raise SystemExit(main())
