"""``python -m ppattack ...`` (and ``torchrun -m ppattack ...``): the command line."""
from ppattack.cli import main

if __name__ == "__main__":
    main()
