"""Allow ``python -m importer``."""

from importer.cli import main

if __name__ == "__main__":
    main()
