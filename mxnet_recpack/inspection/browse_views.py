"""What each address of ``recpack browse`` answers: the files, a page of thumbnails (filtered by
label or key range), one record, the pictures, InsightFace's identities, the failure report and
``verify``'s findings.

Query values are parsed here and refused (400) unless they are what the page takes; records
are addressed by their position in the file, checked against what the file holds (404 past
it). A page reads only the records it shows (:mod:`.browse_grid` chooses them).
"""

import re
from collections import namedtuple

import numpy as np

from ..errors import RecpackError
from ..format.header import MAX_KEY
from .browse_grid import QueryError, labels_of, plain_page, scan_page
from .browse_images import describe, displayable, placeholder, thumbnail
from .browse_pages import (card, class_of, empty_card, esc, href, label_text, mb, page, table,
                           tabs)

__all__ = ["Response", "html", "chrome", "files_view", "grid_view",
           "record_view", "key_view", "picture_view", "identities_view", "failures_view"]

#: ``status``, ``body`` (bytes), content ``type`` and extra ``headers``.
Response = namedtuple("Response", ["status", "body", "type", "headers"])
_MAX_TEXT = 200
_LABELS_SHOWN = 256


def html(text, status=200):
    return Response(status, text.encode("utf-8"), "text/html; charset=utf-8", {})


def _int(query, name, default=None, hi=MAX_KEY):
    text = (query.get(name) or [""])[-1].strip()
    if not text:
        return default
    if not re.fullmatch(r"\d{1,20}", text) or int(text) > hi:
        raise QueryError("%s must be a whole number from 0 to %d; got %r"
                         % (name, hi, text[:40]))
    return int(text)


def _text(query, name):
    text = (query.get(name) or [""])[-1].strip()
    if len(text) > _MAX_TEXT:
        raise QueryError("%s is longer than %d characters" % (name, _MAX_TEXT))
    return text


def files_view(app, query):
    """The files given, with what each holds."""
    rows = []
    for n, bf in enumerate(app.files):
        count, known = bf.count()
        rows.append(('<a href="/f/%d">%s</a>' % (n, esc(bf.name)),
                     "%d%s" % (count, "" if known else "+"), mb(bf.size),
                     "index" if bf.indexed else "no index (walked as pages need)",
                     esc(bf.classes_path and "%d classes" % len(bf.classes)),
                     "InsightFace" if bf.face_layout() else "",
                     '<a href="/f/%d/failures">failure report</a>' % n if bf.report_path else ""))
    body = table(rows, head=("file", "records", "size", "", "classes", "layout", ""))
    return html(page("recpack browse", body))


def _facts(bf):
    count, known = bf.count()
    facts = ["<b>%d%s</b> records" % (count, "" if known else "+ (so far)"), mb(bf.size),
             "index %s" % esc(bf.idx_path.rsplit("/", 1)[-1]) if bf.indexed else
             "no index: read frame by frame up to byte %d" % bf.walked_bytes()]
    if bf.classes:
        facts.append("%d class names from %s" % (len(bf.classes),
                                                 esc(bf.classes_path.rsplit("/", 1)[-1])))
    face = bf.face_layout()
    if face:
        facts.append("InsightFace layout: %d images, %d identities" % (face[0] - 1,
                                                                        face[1] - face[0]))
    out = '<p class="facts">%s</p>' % " &middot; ".join(facts)
    error = bf.walk_error()
    if error is not None:
        out += ('<p class="bad">The file is damaged: %s. The records after it are not shown; '
                '<code>recpack index --salvage</code> makes a new pair of the intact ones.</p>'
                % esc(error))
    return out


def chrome(app, n, active, title, body, refresh=None):
    """A page of file ``n``: its name, its tabs (``active`` marked) and ``body``."""
    bf = app.files[n]
    heading = esc(bf.name) if len(app.files) == 1 else \
        '<a href="/">files</a> / %s' % esc(bf.name)
    nav = tabs(n, active, face=bool(bf.face_layout()), report=bool(bf.report_path))
    return html(page("%s - %s" % (title, bf.name), body, heading=heading, nav=nav,
                     refresh=refresh))


def _filter_form(n, bf, size, label, lo, hi):
    options = "".join('<option value="%s">%d</option>' % (esc(name), label_)
                      for label_, name in sorted(bf.classes.items())[:1000])
    return ('<div class="tools"><form method="get" action="/f/%d" id="filter">'
            '<label>label or class<input name="label" value="%s" list="classes" class="wide" '
            'placeholder="3, 7 or a name"></label><datalist id="classes">%s</datalist>'
            '<label>keys from<input name="from" value="%s" inputmode="numeric"></label>'
            '<label>to<input name="to" value="%s" inputmode="numeric"></label>'
            '<label>per page<input name="n" value="%d" inputmode="numeric"></label>'
            '<button type="submit">Show</button><a class="button" href="/f/%d">Clear</a></form>'
            '<form method="get" action="/f/%d/key" id="open"><label>open key<input name="k" '
            'inputmode="numeric"></label><button type="submit">Open</button></form></div>'
            % (n, esc(label), options, esc(lo), esc(hi), size, n, n))


def grid_view(app, n, query):
    """A page of thumbnails: by position, or filtered by label and key range."""
    bf = app.files[n]
    size = _int(query, "n", app.page_size, hi=500) or app.page_size
    label, lo, hi = _text(query, "label"), _int(query, "from"), _int(query, "to")
    labels = labels_of(label, bf.classes) if label else None
    keep = dict(label=label, n=size if size != app.page_size else None,
                **{"from": lo, "to": hi})
    scanning = labels is not None or (not bf.indexed and (lo, hi) != (None, None))
    if scanning:
        at = _int(query, "at", 0, hi=1 << 62)
        grid = scan_page(bf, at, size, labels, lo, hi, app.scan_budget)
    else:
        number = _int(query, "page", 0, hi=1 << 50)
        grid = plain_page(bf, number * size, size, lo, hi, app.scan_budget)
    cells = [empty_card(n, h) if h.header is None else card(n, h, bf.classes)
             for h in grid.rows]
    body = _facts(bf) + _filter_form(n, bf, size, label, lo, hi)
    body += '<div class="grid">%s</div>' % "".join(cells) if cells else \
        '<p class="dim">No record here matches.</p>'
    if scanning:
        body += _scan_pager(n, at, grid, keep)
    else:
        body += _pager(n, number, size, grid, keep)
    return chrome(app, n, "records", "records", body)


def _pager(n, number, size, grid, keep):
    last = max(0, (grid.total - 1) // size) if grid.known else None
    more = grid.total > (number + 1) * size
    links = ['<a href="%s">&laquo; first</a>' % href("/f/%d" % n, **keep) if number else "",
             '<a rel="prev" href="%s">&lsaquo; previous</a>' % href(
                 "/f/%d" % n, page=number - 1 or None, **keep) if number else "",
             "page %d of %s" % (number + 1, last + 1 if last is not None else "?"),
             '<a rel="next" href="%s">next &rsaquo;</a>' % href(
                 "/f/%d" % n, page=number + 1, **keep) if more else "",
             '<a href="%s">last &raquo;</a>' % href("/f/%d" % n, page=last, **keep)
             if last is not None and number < last else "",
             '%d records found so far, frame by frame: <a href="%s">read on &rsaquo;</a>' % (
                 grid.total, href("/f/%d" % n, page=number or None, **keep))
             if not grid.known and not more else ""]
    return '<div class="pager">%s</div>' % "".join("<span>%s</span>" % x for x in links if x)


def _scan_pager(n, at, grid, keep):
    seen = "%d of %d%s" % (grid.next_at, grid.total, "" if grid.known else "+")
    text = "%d match(es) among records %d to %d (read %s)" % (
        len(grid.rows), at, max(at, grid.next_at - 1), seen)
    links = ['<a href="%s">&laquo; from the start</a>' % href("/f/%d" % n, **keep)
             if at else "", text,
             '<a rel="next" href="%s">%s &rsaquo;</a>' % (
                 href("/f/%d" % n, at=grid.next_at, **keep),
                 "more matches" if len(grid.rows) else "read on") if not grid.done else
             "<span class=\"dim\">(the end of the file)</span>"]
    return '<div class="pager">%s</div>' % "".join("<span>%s</span>" % x for x in links if x)


def _position(app, n, pos):
    """``pos`` if file ``n`` has a record there (a file without an index is walked on until
    it is known), else None."""
    count, known = app.files[n].count(pos + 1, app.scan_budget)
    return pos if pos < count else None


def record_view(app, n, pos):
    """One record: its header fields, where it is, what its image holds, the image."""
    bf = app.files[n]
    if _position(app, n, pos) is None:
        return None
    count, known = bf.count()
    nav = ['<a rel="prev" href="/f/%d/r/%d">&lsaquo; previous</a>' % (n, pos - 1) if pos else "",
           "record %d of %d%s" % (pos + 1, count, "" if known else "+"),
           '<a href="%s">its page</a>' % href("/f/%d" % n, page=pos // app.page_size or None),
           '<a rel="next" href="/f/%d/r/%d">next &rsaquo;</a>' % (n, pos + 1)
           if _position(app, n, pos + 1) is not None else ""]
    pager = '<div class="pager">%s</div>' % "".join("<span>%s</span>" % x for x in nav if x)
    try:
        key, offset, stored, header, image = bf.record(pos)
    except RecpackError as exc:
        key, offset = bf.where(pos)
        body = pager + '<p class="bad">Record %s at byte %d cannot be read: %s</p>' % (
            esc(key), offset, esc(exc))
        return chrome(app, n, "records", "record %s" % key, body)
    rows = [("position", "%d" % pos), ("key", esc(key)), ("byte offset", "%d" % offset),
            ("stored", "%d bytes (frames and padding included)" % stored),
            ("flag", "%d" % header.flag),
            ("label", esc(label_text(header, limit=_LABELS_SHOWN))),
            ("class", esc(class_of(header, bf.classes))), ("id", "%d" % header.id),
            ("id2", "%d" % header.id2)]
    rows += _image_rows(image) + _face_rows(bf, n, key, header, image)
    fields = '<table class="fields">%s</table>' % "".join(
        "<tr><th>%s</th><td>%s</td></tr>" % (a, b) for a, b in rows if b)
    picture = '<img id="full" src="/f/%d/i/%d" alt="record %s">' % (n, pos, esc(key)) \
        if len(image) else '<p class="dim">A label-only record: no image.</p>'
    body = pager + ('<div class="record"><div class="full">%s</div><div class="side">%s</div>'
                    '</div>' % (picture, fields))
    return chrome(app, n, "records", "record %s" % key, body)


def _image_rows(image):
    if not len(image):
        return [("image", "none (label only)")]
    info = describe(image)
    size = "%s x %s" % (info["width"], info["height"]) if info["width"] is not None else \
        "unknown"
    return [("format", esc(info["encoding"])), ("image bytes", "%d" % len(image)),
            ("width x height", size), ("channels", esc(info["channels"])),
            ("EXIF orientation", esc(info["orientation"])), ("array", esc(info["dtype"]))]


def _span(header):
    """An identity record's ``[first image key, end)``, or None when its label is not one."""
    if header is None or header.flag < 2:
        return None
    a, b = (float(v) for v in header.label[:2])
    if not (np.isfinite(a) and np.isfinite(b) and a == int(a) and b == int(b) and 0 <= a <= b):
        return None
    return int(a), int(b)


def _face_rows(bf, n, key, header, image):
    face = bf.face_layout()
    if not face or len(image):
        return []
    first, end = face
    if key == 0:
        return [("InsightFace", "the header record: images are keys 1 to %d, identities keys "
                 "%d to %d (<a href=\"/f/%d/identities\">list</a>)" % (first - 1, first,
                                                                       end - 1, n))]
    span = _span(header) if first <= key < end else None
    if span:
        a, b = span
        return [("InsightFace", 'identity record %d: <a href="%s">its %d images</a> (keys %d '
                 "to %d)" % (key - first, href("/f/%d" % n, **{"from": a, "to": b - 1}),
                             b - a, a, b - 1))]
    return []


def key_view(app, n, query):
    """The record with key ``k``: a redirect to its position."""
    key = _int(query, "k")
    if key is None:
        raise QueryError("give the key of a record to open: ?k=NUMBER")
    pos = int(app.files[n].positions_of([key])[0])
    if pos < 0:
        return None
    return Response(303, b"", "text/plain", {"Location": "/f/%d/r/%d" % (n, pos)})


def picture_view(app, n, pos, kind):
    """``kind`` "t": the thumbnail (cached); "i": the image as the browser shows it."""
    if _position(app, n, pos) is None:
        return None
    if kind == "t":
        got = app.cache.get((n, pos))
        if got is None:
            with app.decoding:
                try:
                    got = thumbnail(app.files[n].record(pos)[4], app.thumb_size)
                except RecpackError:
                    got = placeholder("damaged", app.thumb_size)
            app.cache.put((n, pos), got)
    else:
        with app.decoding:
            got = displayable(app.files[n].record(pos)[4])
        if got is None:
            return None
    return Response(200, got[0], got[1], {"Cache-Control": "private, max-age=3600"})


def identities_view(app, n, query):
    """InsightFace's identities: a page of them, each with its first image and its range."""
    bf = app.files[n]
    face = bf.face_layout()
    if not face:
        return None
    first, end = face
    at = _int(query, "at", 0, hi=max(0, end - first))
    keys = np.arange(first + at, min(end, first + at + app.page_size), dtype=np.uint64)
    rows = []
    for key, pos in zip(keys.tolist(), bf.positions_of(keys).tolist()):
        head = bf.head(pos) if pos >= 0 else None
        span = _span(head.header) if head is not None and not head.has_image else None
        if span is None:
            rows.append(("%d" % (key - first), "%d" % key, '<span class="bad">missing or not '
                         'an identity record</span>', "", ""))
            continue
        a, b = span
        img = int(bf.positions_of([a])[0]) if b > a else -1
        face = bf.head(img) if img >= 0 else None
        rows.append(("%d" % (key - first), '<a href="/f/%d/r/%d">%d</a>' % (n, pos, key),
                     '<a href="%s">%d image(s)</a>, keys %d to %d' % (
                         href("/f/%d" % n, **{"from": a, "to": b - 1}), b - a, a, b - 1),
                     esc(label_text(face.header, limit=4)) if face and face.header else "",
                     '<img src="/f/%d/t/%d" alt="" loading="lazy" height="64">' % (n, img)
                     if img >= 0 else ""))
    more = first + at + app.page_size < end
    pager = ('<div class="pager"><span>identities %d to %d of %d</span>%s%s</div>'
             % (at, at + len(rows) - 1, end - first,
                '<span><a rel="prev" href="/f/%d/identities?at=%d">&lsaquo; previous</a></span>'
                % (n, max(0, at - app.page_size)) if at else "",
                '<span><a rel="next" href="/f/%d/identities?at=%d">next &rsaquo;</a></span>'
                % (n, at + app.page_size) if more else ""))
    body = _facts(bf) + table(rows, head=("identity record", "its key", "images",
                                          "label of its first image", "first image")) + pager
    return chrome(app, n, "identities", "identities", body)


def failures_view(app, n, query):
    """The failure report beside the file (``NAME.failures.jsonl``): what was skipped."""
    bf = app.files[n]
    if not bf.report_path:
        return None
    rows, lines, more = bf.failures()
    cells = [tuple(esc(r.get(k)) for k in ("index", "key", "source", "error", "message"))
             for r in rows]
    body = ('<p class="facts"><b>%d</b> item(s) skipped when %s was written, listed in %s%s</p>'
            % (lines, esc(bf.name), esc(bf.report_path.rsplit("/", 1)[-1]),
               " (the first %d shown)" % len(rows) if more else ""))
    body += table(cells, head=("item", "key", "source", "error", "message"), cls="mono")
    return chrome(app, n, "failures", "failure report", body)

