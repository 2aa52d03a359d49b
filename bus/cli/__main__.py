"""``python -m bus.cli``."""

from bus.cli import main

if __name__ == "__main__":
    main()
