"""``python -m coinfer.cli``: the same as the ``coinfer`` command."""

from coinfer.cli import main

main()
