import sys

from tornado_files.cli import main

sys.exit(main())
