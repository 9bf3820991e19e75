"""`python -m dialpref.cli`."""

from dialpref.cli import main

main()
