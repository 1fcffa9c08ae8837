import sys

from bot import early_stop

early_stop.hold()  # before the slow imports below: a SIGTERM during them stops us cleanly

from bot.cli import main  # noqa: E402

sys.exit(main())
