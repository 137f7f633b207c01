import sys

from seamwise.cli import main

sys.exit(main())
