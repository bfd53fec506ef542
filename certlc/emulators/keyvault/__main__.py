"""``python -m certlc.emulators.keyvault``: the same as ``certlc emulator keyvault``."""

from certlc.emulators.keyvault.cli import main

raise SystemExit(main())
