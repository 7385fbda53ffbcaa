import sys

from pyvision_engine.cli import main

sys.exit(main())
