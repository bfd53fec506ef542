"""``python -m localazure.emulators.keyvault``: the same as ``certlc emulator keyvault``."""

from localazure.emulators.keyvault.cli import main

raise SystemExit(main())
