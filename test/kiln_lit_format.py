"""The lit test format of Kiln's suite (test/lit.cfg.py)."""

import glob
import os
import shutil

import lit.formats
import lit.TestRunner


class ShTestFreeingOutputs(lit.formats.ShTest):
    """ShTest that deletes a passing test's %t files: the compiled models and
    converted checkpoints the suite writes add up to gigabytes, more than a
    CI machine's disk holds. A failing test keeps its files for inspection,
    and KILN_LIT_KEEP_OUTPUTS=1 keeps every test's."""

    def execute(self, test, litConfig):
        result = super().execute(test, litConfig)
        if (not result.code.isFailure and
                not os.environ.get("KILN_LIT_KEEP_OUTPUTS")):
            _, tmp_base = lit.TestRunner.getTempPaths(test)
            for path in glob.glob(glob.escape(tmp_base + ".tmp") + "*"):
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    try:
                        os.remove(path)
                    except OSError:
                        pass
        return result
