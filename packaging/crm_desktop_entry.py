"""The frozen app's entry point: the same ``main`` as the ``crm-desktop`` console script."""

import multiprocessing
import sys

from crm_desktop.cli import main

if __name__ == "__main__":
    multiprocessing.freeze_support()  # a plugin's multiprocessing children re-enter here when spawned
    sys.exit(main())
