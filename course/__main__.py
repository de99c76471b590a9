"""`python -m course run|refresh|sync`: see course/run.py."""
import sys

from course.run import main

sys.exit(main())
