"""``python -m bus.cli``."""

from bus.cli import main

main()
