import sys

from certlc.cli import main

sys.exit(main())
