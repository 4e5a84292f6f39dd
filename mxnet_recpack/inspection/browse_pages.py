"""The HTML of ``recpack browse``: one page skeleton, the pieces every page shares (tabs, facts,
pager, a table), its style sheet and its few lines of script. Every text from a file is escaped
here; the pages link only to this server's own addresses (no external assets)."""

import html
import math
from urllib.parse import urlencode

__all__ = ["page", "esc", "href", "table", "tabs", "card", "empty_card", "STYLE", "SCRIPT",
           "label_text", "class_of", "mb"]


def esc(value):
    """``value`` as HTML text (attribute-safe)."""
    return html.escape("" if value is None else str(value), quote=True)


def href(path, **query):
    """A link to ``path`` with the non-empty ``query`` values, escaped for an attribute."""
    query = {k: v for k, v in query.items() if v not in (None, "")}
    return esc(path + ("?" + urlencode(query) if query else ""))


def mb(size):
    return "%.1f MB" % (size / 1e6) if size >= 100_000 else "%d bytes" % size


def label_text(header, limit=None):
    """A record's label as text: ``3``, ``0.25``, ``[2, 5, 0.1]`` (``limit``: the first values
    only, then ``...``)."""
    if header.flag == 0:
        return "%g" % header.label
    values = ["%g" % v for v in (header.label if limit is None else header.label[:limit])]
    if limit is not None and header.flag > limit:
        values.append("...")
    return "[" + ", ".join(values) + "]"


def class_of(header, classes):
    """The class name of a record's scalar integer label in ``classes``, or None."""
    value = header.label if header.flag == 0 else None
    if not classes or value is None or not math.isfinite(value) or value != int(value):
        return None
    return classes.get(int(value))


def page(title, body, *, heading="", nav="", refresh=None):
    """A whole page: ``nav`` (the tabs) and ``body`` are HTML already; ``refresh`` seconds
    reloads it (a verify run in progress)."""
    meta = '<meta http-equiv="refresh" content="%d">' % refresh if refresh else ""
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">%s"
            "<title>%s</title><link rel=\"stylesheet\" href=\"/app.css\">"
            "<script src=\"/app.js\" defer></script></head><body>"
            "<header><a class=\"brand\" href=\"/\">recpack browse</a>"
            "<span class=\"file\">%s</span><nav>%s</nav></header>"
            "<main>%s</main></body></html>\n" % (meta, esc(title), heading, nav, body))


def tabs(n, active, *, face=False, report=False):
    """The tabs of file ``n``: its records, identities (InsightFace), failures, verify."""
    items = [("records", "/f/%d" % n, "Records")]
    if face:
        items.append(("identities", "/f/%d/identities" % n, "Identities"))
    if report:
        items.append(("failures", "/f/%d/failures" % n, "Failure report"))
    items.append(("verify", "/f/%d/verify" % n, "Verify"))
    return "".join('<a href="%s"%s>%s</a>' % (path, ' class="on"' if name == active else "",
                                              text) for name, path, text in items)


def table(rows, *, head=None, cls=""):
    """A table of already-escaped cells."""
    out = ['<table class="%s">' % cls if cls else "<table>"]
    if head:
        out.append("<tr>" + "".join("<th>%s</th>" % h for h in head) + "</tr>")
    for row in rows:
        out.append("<tr>" + "".join("<td>%s</td>" % c for c in row) + "</tr>")
    out.append("</table>")
    return "".join(out)


def card(n, head, classes):
    """One grid cell: the thumbnail, key, label and class name of a record."""
    header = head.header
    cls = class_of(header, classes)
    label = label_text(header, limit=4)
    pic = ('<img src="/f/%d/t/%d" alt="record %d" loading="lazy">' % (n, head.pos, head.key)
           if head.has_image else '<span class="none">label only</span>')
    return ('<a class="card" href="/f/%d/r/%d" data-pos="%d" data-key="%s" data-label="%s">'
            '<span class="pic">%s</span><span class="cap"><span class="key">#%s</span>'
            '<span class="lab">%s</span>%s</span></a>'
            % (n, head.pos, head.pos, esc(head.key), esc(label), pic, esc(head.key), esc(label),
               '<span class="cls" title="%s">%s</span>' % (esc(cls), esc(cls)) if cls else ""))


def empty_card(n, head):
    """A grid cell for a record that cannot be read: where it is and why."""
    return ('<a class="card bad" href="/f/%d/r/%d" data-pos="%d"><span class="pic"><span '
            'class="none">damaged</span></span><span class="cap">#%s at byte %d</span></a>'
            % (n, head.pos, head.pos, esc(head.key), head.offset))


STYLE = """\
:root{color-scheme:dark;--bg:#15171c;--panel:#1e2128;--line:#30343d;--text:#e7e7ea;
--dim:#9aa1ac;--accent:#70b8ff;--bad:#ff7b72;--ok:#7ee787}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--text);
font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
a{color:var(--accent);text-decoration:none}a:hover{text-decoration:underline}
header{display:flex;flex-wrap:wrap;gap:8px 22px;align-items:baseline;padding:10px 18px;
background:var(--panel);border-bottom:1px solid var(--line)}
header .brand{font-weight:650;color:var(--text)}header .file{font-weight:600}
header nav a{margin-right:16px;color:var(--dim)}header nav a.on{color:var(--text);
border-bottom:2px solid var(--accent);padding-bottom:2px}
main{padding:14px 18px 30px}
.facts{color:var(--dim);margin:0 0 12px}.facts b{color:var(--text);font-weight:600}
.tools{display:flex;flex-wrap:wrap;gap:10px 36px;align-items:flex-end;margin:0 0 14px}
form{display:flex;flex-wrap:wrap;gap:10px;align-items:flex-end;margin:0}
form label{display:flex;flex-direction:column;gap:2px;font-size:12px;color:var(--dim)}
input{background:#0e1014;color:var(--text);border:1px solid var(--line);border-radius:4px;
padding:5px 8px;font:inherit;width:9em}input.wide{width:14em}
button,.button{background:#2b3140;color:var(--text);border:1px solid #3b4352;
border-radius:4px;padding:5px 12px;font:inherit;cursor:pointer;display:inline-block}
button:hover,.button:hover{border-color:var(--accent);text-decoration:none}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(178px,1fr));gap:10px}
.card{display:block;background:var(--panel);border:1px solid var(--line);border-radius:6px;
padding:8px;color:var(--text);min-width:0}
.card:hover{border-color:var(--accent);text-decoration:none}
.card .pic{height:160px;display:flex;align-items:center;justify-content:center;
background:#0b0c0f;border-radius:3px;overflow:hidden}
.card img{max-width:100%;max-height:160px;display:block}
.card .none{color:var(--dim);font-size:12px}
.cap{display:flex;gap:8px;margin-top:6px;font-size:12px;white-space:nowrap;overflow:hidden}
.cap .key{color:var(--dim)}.cap .lab{font-weight:600}
.cap .cls{overflow:hidden;text-overflow:ellipsis;color:#d2a8ff}
.pager{display:flex;flex-wrap:wrap;gap:14px;align-items:center;margin:16px 0;color:var(--dim)}
table{border-collapse:collapse;margin:0 0 14px}
th,td{padding:4px 12px 4px 0;border-bottom:1px solid var(--line);text-align:left;
vertical-align:top}th{color:var(--dim);font-weight:500}
table.fields th{width:11em}
.record{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start}
.record .full{flex:0 1 auto;max-width:min(100%,960px)}
.record .full img{max-width:100%;max-height:85vh;display:block;background:#0b0c0f;
border-radius:3px;cursor:zoom-in}
.record .side{flex:0 1 460px}
.bad,.facts .bad{color:var(--bad)}.ok,.facts .ok{color:var(--ok)}.dim{color:var(--dim)}
.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px;
word-break:break-all}
"""

#: Arrow keys follow the page's previous and next links (not while typing in a field); a
#: click on the full image toggles between fitting the page and its own size.
SCRIPT = """\
"use strict";
document.addEventListener("keydown", function (e) {
  var t = e.target && e.target.tagName;
  if (t === "INPUT" || t === "TEXTAREA" || e.altKey || e.ctrlKey || e.metaKey) return;
  var rel = e.key === "ArrowLeft" ? "prev" : e.key === "ArrowRight" ? "next" : null;
  var a = rel && document.querySelector('a[rel="' + rel + '"]');
  if (a) { window.location.href = a.href; }
});
document.addEventListener("click", function (e) {
  var img = e.target;
  if (img && img.id === "full") {
    img.style.maxWidth = img.style.maxWidth === "none" ? "" : "none";
  }
});
"""
