"""``python -m edgedistill ...`` (also what ``accelerate launch -m edgedistill train ...`` runs)."""
import sys

from edgedistill.cli import main

sys.exit(main())
