"""``python -m musiclens`` runs the command-line interface."""

from musiclens.cli import main

if __name__ == "__main__":
    main()
