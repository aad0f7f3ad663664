"""`python -m pmsync.app.cli`: the same command as the `pmsync` script."""

from pmsync.app.cli.main import main

main()
