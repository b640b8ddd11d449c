"""`python -m egain_token_operator run [flags]`."""

from egain_token_operator.cli import main

main()
