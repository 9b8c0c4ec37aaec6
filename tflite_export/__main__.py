import sys

from tflite_export.cli import main

sys.exit(main())
