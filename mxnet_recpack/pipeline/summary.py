"""What a run did: one :class:`WriteSummary` per file written, from every front door."""

__all__ = ["WriteSummary"]


class WriteSummary:
    """What a run did: records ``written``, items ``failed`` (skipped), ``bytes``, ``seconds``,
    and where the skipped items are listed (``report_path``, None when none failed).

    Picklable (it travels back from Dask workers); :meth:`line` is the CLI's summary line.
    """

    def __init__(self, path, written=0, failed=0, nbytes=0, seconds=0.0, report_path=None,
                 status="written"):
        self.path = path
        #: ``"written"``, or ``"already complete"`` (a resume of a run that had finished)
        self.status = status
        self.written = written
        self.failed = failed
        self.bytes = nbytes
        self.seconds = seconds
        self.report_path = report_path

    @property
    def images_per_second(self):
        return self.written / self.seconds if self.seconds > 0 else float("nan")

    def __repr__(self):
        return ("WriteSummary(path=%r, written=%d, failed=%d, bytes=%d, seconds=%.2f)"
                % (self.path, self.written, self.failed, self.bytes, self.seconds))

    def __eq__(self, other):
        return isinstance(other, WriteSummary) and self.as_dict() == other.as_dict()

    def line(self):
        """``path: N records, X MB in T s (R images/s); skipped K bad image(s), listed in F``."""
        if self.status == "already complete":
            return "%s: already complete (made by this same run); nothing to do" % self.path
        if self.status != "written":
            return "%s: %s" % (self.path, self.status)
        text = "%s: %d records, %.1f MB in %.1f s (%.0f images/s)" % (
            self.path, self.written, self.bytes / 1e6, self.seconds,
            self.written / self.seconds if self.seconds > 0 else 0)
        if self.failed:
            text += "; skipped %d bad image(s), listed in %s" % (self.failed, self.report_path)
        return text

    def as_dict(self):
        """The summary as a plain dict (``path``, ``written``, ``failed``, ``bytes``,
        ``seconds``, ``report_path``)."""
        return {"path": self.path, "written": self.written, "failed": self.failed,
                "bytes": self.bytes, "seconds": self.seconds, "report_path": self.report_path,
                "status": self.status}
