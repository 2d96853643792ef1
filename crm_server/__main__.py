import sys

from crm_server.cli import main

sys.exit(main())
