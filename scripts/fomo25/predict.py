#!/usr/bin/env python3
"""The FOMO25 container's entry point, handing each call to `gyrus predict`.

The challenge calls, once per subject:
    predict.py --flair /input/ses_1/flair.nii.gz ... --output /output/sub_N.txt
This script passes those arguments unchanged to
    gyrus predict --store $GYRUS_STORE $GYRUS_STAGE <arguments>
and exits with gyrus's status. Settings (environment, set in the container's image):
    GYRUS_STAGE  the fine-tuning evaluation to predict with (its name or hash) - required
    GYRUS_STORE  the run store holding it (default /opt/gyrus/store)
    GYRUS        the gyrus executable (default: gyrus on PATH)
Standard library only; see docs/fomo25-submission.md.
"""
import os
import sys


def main(argv):
    stage = os.environ.get("GYRUS_STAGE", "")
    if not stage:
        sys.stderr.write("predict.py: set GYRUS_STAGE to the fine-tuning evaluation to predict with "
                         "(its name in the store, or its hash)\n")
        return 2
    store = os.environ.get("GYRUS_STORE", "/opt/gyrus/store")
    gyrus = os.environ.get("GYRUS", "gyrus")
    command = [gyrus, "predict", "--store", store, stage] + argv
    try:
        os.execvp(gyrus, command)
    except OSError as e:
        sys.stderr.write("predict.py: cannot run %s: %s\n" % (gyrus, e))
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
