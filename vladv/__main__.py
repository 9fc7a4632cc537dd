"""``python -m vladv`` runs the CLI (also what ``torchrun -m vladv`` uses)."""

from vladv.cli import main

main()
