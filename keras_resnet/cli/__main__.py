"""``python -m keras_resnet.cli``: the ``keras-resnet`` command."""

import sys

from keras_resnet.cli.main import main

sys.exit(main())
