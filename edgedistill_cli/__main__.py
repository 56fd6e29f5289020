"""``python -m edgedistill_cli ...``: what ``accelerate launch -m edgedistill_cli train ...`` runs."""
import sys

from edgedistill_cli.commands import main

sys.exit(main())
