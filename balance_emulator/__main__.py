"""`python3.11 -m balance_emulator`: the same as the `balance-emulator` command."""

from balance_emulator.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
