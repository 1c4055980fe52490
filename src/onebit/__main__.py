import sys

from onebit.cli import console_main

sys.exit(console_main())
