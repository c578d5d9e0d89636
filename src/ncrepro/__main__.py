import sys

from ncrepro.cli import main

sys.exit(main())
