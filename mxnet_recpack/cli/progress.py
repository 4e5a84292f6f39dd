"""The progress bar: tqdm on a terminal, nothing elsewhere or with ``--quiet``."""

import shutil
import sys

__all__ = ["Progress"]


class Progress:
    """A callable ``progress(done, total)`` drawing a bar on stderr when it is a terminal."""

    def __init__(self, desc, quiet):
        self.bar = None
        self.desc = desc
        self.enabled = not quiet and sys.stderr.isatty()

    def __call__(self, done, total):
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm
            # A tty that reports no size (0 x 0) would hide the bar: fall back to 100 x 24.
            size = shutil.get_terminal_size((100, 24))
            self.bar = tqdm(total=total, desc=self.desc, unit="img",
                            ncols=min(size.columns, 120), nrows=size.lines)
        self.bar.update(done - self.bar.n)  # drawn at most every 0.1 s (tqdm's mininterval)

    def close(self):
        if self.bar is not None:
            self.bar.close()
