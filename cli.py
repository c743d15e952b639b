"""Run the ppattack command line from a checkout: ``python cli.py run --cipher proposed --attack itn``.

The installed console script ``ppattack`` calls the same function, ``ppattack.cli.main``.
"""
from ppattack.cli import main

if __name__ == "__main__":
    main()
