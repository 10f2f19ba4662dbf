"""`python -m deckhand.cli`: what the agent uses to start prediction servers and tracking agents."""

import sys

from deckhand.cli import main

sys.exit(main())
