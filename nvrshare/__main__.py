import sys

from nvrshare.cli import main

sys.exit(main())
