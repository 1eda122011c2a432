"""``python -m polymodal.cli``: the same command as ``polymodal``."""

from polymodal.cli import main

main()
