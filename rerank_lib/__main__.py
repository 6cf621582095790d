"""`python -m rerank_lib ...`: the command line (see rerank_lib.cli)."""
import sys

from .cli import main

sys.exit(main())
