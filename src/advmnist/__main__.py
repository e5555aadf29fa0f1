"""`python -m advmnist` is the `advmnist` command."""

from advmnist.cli import main

raise SystemExit(main())
