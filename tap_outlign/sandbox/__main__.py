"""`python -m tap_outlign.sandbox`: run the sandbox CLI."""

from tap_outlign.sandbox.cli import main

raise SystemExit(main())
