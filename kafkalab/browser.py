"""A topic browser for JupyterLab, like the message views of kafka-ui, Redpanda Console or AKHQ, but
with pandas underneath: page through a topic, jump to an offset or a time, filter, look at one record.

Every page is a bounded read through kafkalab's reader (at most page_size records per partition per
fetch, at most SCAN_PAGES x page_size records scanned to fill a filtered page). No thread, no client
kept open: each click opens an admin client, reads and closes it, in the kernel's own thread.
"""
from __future__ import annotations

import heapq
import html
import json

import ipywidgets as w
import numpy as np
import pandas as pd
from pandas.errors import UndefinedVariableError

from .reader import META_COLUMNS, TAIL_COLUMNS, Columns, OffsetSpec, Plan, Session, columns_frame, fetch_records
from .times import parse_time
from .records import decode_value

PAGE_SIZES = (20, 50, 100, 200, 500)
SCAN_PAGES = 20            # a filtered page scans at most 20 x page_size records to fill itself
CELL_CHARS = 40            # table cells are cut there (the selected record shows everything)
LAST = ("end", "last", "latest", "newest")
FIRST = ("start", "first", "earliest", "oldest", "beginning")
QUERY_HELP = ("query: pandas <code>DataFrame.query</code> syntax over the columns below, run in this kernel on the "
              "records read; backticks around dotted names: <code>`user.country` == 'FR'</code>")
CSS = """<style>
.kl-table {max-height: 460px; overflow: auto; border: 1px solid #ddd; width: fit-content; max-width: 100%}
.kl-table table {border-collapse: collapse; font: 12px/1.35 monospace; white-space: nowrap}
.kl-table th {position: sticky; top: 0; background: #f3f3f3; text-align: left; padding: 3px 8px}
.kl-table td {padding: 2px 8px; border-top: 1px solid #eee}
.kl-table tr.kl-sel td {background: #fff1b8}
.kl-pre {font: 12px/1.4 monospace; margin: 4px 0; max-height: 320px; overflow: auto; white-space: pre-wrap}
</style>"""


def merge(runs: dict, open_runs=frozenset(), forward: bool = True):
    """Interleave per-partition runs of (timestamp, offset, ...) into one page order: each run keeps
    its own (offset) order, the next record is the earliest head by timestamp (the latest tail when
    going backward). Stops after the last record of a run in `open_runs` (that partition has more
    records not fetched yet, which may come first). Yields (partition, record)."""
    sign = 1 if forward else -1
    heap = [(sign * run[0][0], sign * p, 0, p) for p, run in runs.items() if run]
    if any(not runs[p] for p in open_runs):
        return
    heapq.heapify(heap)
    while heap:
        _, _, i, p = heapq.heappop(heap)
        yield p, runs[p][i]
        if i + 1 < len(runs[p]):
            heapq.heappush(heap, (sign * runs[p][i + 1][0], sign * p, i + 1, p))
        elif p in open_runs:
            return


def _cell(v) -> str:
    if v is None or (pd.api.types.is_scalar(v) and pd.isna(v)):
        return ""
    if isinstance(v, pd.Timestamp):
        return v.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    if isinstance(v, (dict, list)):
        return json.dumps(v, ensure_ascii=False, default=str)
    return v if isinstance(v, str) else repr(v) if isinstance(v, bytes) else str(v)


def _has(key, text: str) -> bool:
    """The key filter: a substring of a text key (of a binary key's bytes, as UTF-8)."""
    return text in key if isinstance(key, str) else text.encode() in key if isinstance(key, bytes) else False


def html_table(frame: pd.DataFrame, selected: int | None = None, tombstones=(), chars: int = CELL_CHARS) -> str:
    """The page as an HTML table (every value escaped, long ones cut), row `selected` highlighted."""
    cols = [c for c in frame.columns if c != "headers"]
    if "value" in cols and not len(tombstones) and frame["value"].isna().all():
        cols.remove("value")                 # every value is a JSON object: its fields are the columns
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in ["#", *cols])
    rows = []
    for i, row in enumerate(frame[cols].itertuples(index=False)):
        cells = []
        for c, v in zip(cols, row):
            text = "∅ tombstone" if c == "value" and i in tombstones else _cell(v)
            cut = text if len(text) <= chars else text[:chars - 1] + "…"
            cells.append(f"<td title='{html.escape(text[:500])}'>{html.escape(cut)}</td>")
        rows.append(f"<tr{' class=kl-sel' if i == selected else ''}><td>{i}</td>{''.join(cells)}</tr>")
    return f"<div class=kl-table><table><tr>{head}</tr>{''.join(rows)}</table></div>"


def pretty(value) -> str:
    """A record's value for reading: JSON indented, text as it is, bytes as a Python literal."""
    if value is None:
        return "null: a tombstone (deletes this key from a compacted topic)"
    if isinstance(value, bytes):
        return f"{len(value)} bytes, not UTF-8:\n{value!r}"
    return value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False, default=str)


class Browser:
    """Page through a topic's records, newest or oldest first, with filters and one record's detail.

    Parameters
    ----------
    topic : the topic (TopicNotFound at once if it does not exist).
    page_size : records per page, 20 to 500 (the dropdown offers 20, 50, 100, 200, 500).
    partition : one partition, or None for all (records of all partitions merged by timestamp); the
        dropdown's `.value` is "all" or a partition number.
    start : where the first page starts: None (the oldest records), "end" (the newest page), an
        offset (int: that offset of each partition) or a time ("2026-11-28 09:00" UTC, "-1h").
    **client_overrides : connection settings (kafkalab.client_config).

    Filters: key substring, and a pandas `DataFrame.query` expression over the flattened JSON fields
    (read()'s columns), evaluated locally in the kernel on each page's records, e.g.
    "status >= 500 and `user.country` == 'FR'" (backticks for dotted names). A filtered page scans on
    until it is full or SCAN_PAGES x page_size records were scanned, and says how many it scanned.
    Pages going back are built backward from the current page's start; with timestamps out of order
    inside a partition they can cut the records differently, but every record is still shown once.
    Errors (bad query, offset or time, a broker gone) show in red and keep the current page.
    Nothing runs in the background and no client stays open, so there is nothing to stop.
    """

    def __init__(self, topic: str, page_size: int = 50, partition: int | None = None, start=None,
                 **client_overrides):
        if not (isinstance(page_size, int) and 20 <= page_size <= 500):
            raise ValueError(f"page_size must be a number of records from 20 to 500, got {page_size!r}")
        self.topic, self.overrides = topic, client_overrides
        with Session(**client_overrides) as s:
            self.partitions = sorted(s.leaders(topic))
        if partition is not None and partition not in self.partitions:
            raise ValueError(f"{topic!r} has partitions 0-{len(self.partitions) - 1}, not {partition!r}")
        self._frame, self._raw, self._start, self._end = pd.DataFrame(), [], {}, {}
        self.error, self.scanned, self.at_start, self.at_end, self.selected = None, 0, True, True, None
        self._build(page_size, partition)
        self._jump("start" if start is None else start)     # errors raise here, in the constructor

    # -- the widget ------------------------------------------------------------------------------
    def _build(self, page_size: int, partition) -> None:
        small, style = w.Layout(width="76px"), {"description_width": "initial"}
        buttons = {name: w.Button(description=label, layout=small, tooltip=f"{name} page")
                   for name, label in (("first", "« first"), ("prev", "‹ prev"), ("next", "next ›"),
                                       ("last", "last »"))}
        for name, b in buttons.items():
            b.on_click(lambda _b, act=getattr(self, name): act())
        self.page_size = w.Dropdown(options=sorted({*PAGE_SIZES, page_size}), value=page_size,
                                    description="page size", style=style, layout=w.Layout(width="150px"))
        self.jump_to = w.Text(description="jump to", placeholder="offset, or a time: 2026-11-28 09:00, -1h",
                              continuous_update=False, style=style, layout=w.Layout(width="340px"))
        go = w.Button(description="go", layout=w.Layout(width="44px"), tooltip="jump to this offset or time")
        self.partition = w.Dropdown(options=["all", *self.partitions], value="all" if partition is None else partition,
                                    description="partition", style=style, layout=w.Layout(width="150px"))
        self.key = w.Text(description="key contains", continuous_update=False, style=style,
                          layout=w.Layout(width="240px"))
        self.query = w.Text(description="query", placeholder="status >= 500 and `user.country` == 'FR'",
                            continuous_update=False, style=style, layout=w.Layout(width="520px"))
        self.record = w.BoundedIntText(description="record #", min=0, max=0, style=style,
                                       layout=w.Layout(width="140px"))
        self.status, self.message, self.table, self.detail = w.HTML(), w.HTML(), w.HTML(), w.HTML()
        go.on_click(lambda _b: self.jump(self.jump_to.value))
        self.jump_to.observe(lambda ch: ch["new"].strip() and self.jump(ch["new"]), "value")
        for control in (self.page_size, self.key, self.query):      # read this page again, from its start
            control.observe(lambda ch: self._safely(self._go, lambda s, lo, hi: self._start, True), "value")
        self.partition.observe(lambda ch: self._safely(self._reanchor), "value")
        self.record.observe(lambda ch: len(self._frame) and self.select(ch["new"]), "value")
        self.box = w.VBox([
            w.HTML(CSS + f"<b>{html.escape(self.topic)}</b> · {len(self.partitions)} partitions"),
            w.HBox([*buttons.values(), self.page_size, self.jump_to, go]),
            w.HBox([self.partition, self.key, self.query]),
            w.HTML(f"<small style='color:#666'>{QUERY_HELP}</small>"),
            self.status, self.message, self.table, w.HBox([self.record]), self.detail],
            layout=w.Layout(max_width="1200px"))

    def _ipython_display_(self):
        from IPython.display import display
        display(self.box)

    def _repr_mimebundle_(self, **kwargs):
        return self.box._repr_mimebundle_(**kwargs)

    @property
    def frame(self) -> pd.DataFrame:
        """The page shown, as read() would return it (flattened JSON fields as columns)."""
        return self._frame

    # -- navigation: each one a bounded read, its errors shown in the widget ----------------------
    def first(self) -> None:
        """The oldest records."""
        self._safely(self._go, lambda s, lo, hi: lo, True)

    def last(self) -> None:
        """The newest records."""
        self._safely(self._go, lambda s, lo, hi: hi, False)

    def next(self) -> None:
        """The records after this page (the page stays when there are none)."""
        self._safely(self._go, lambda s, lo, hi: self._end, True, True)

    def prev(self) -> None:
        """The records before this page (the page stays when there are none)."""
        self._safely(self._go, lambda s, lo, hi: self._start, False, True)

    def jump(self, to) -> None:
        """A page from an offset (int or digits: that offset in each partition) or a time (the
        first record at or after it in each partition); "end" for the newest page."""
        self._safely(self._jump, to)

    def select(self, i: int) -> None:
        """Show record #i of the page: its value pretty-printed, and its headers."""
        if not 0 <= i < len(self._frame):
            return self._say(f"no record #{i}: this page has {len(self._frame)}", error=True)
        self.selected, self.record.value = i, i
        row, value = self._frame.iloc[i], pretty(decode_value(self._raw[i]))[:100_000]   # a huge one is cut
        headers = "\n".join(f"{k}: {pretty(v)}" for k, v in row["headers"].items()) or "(no headers)"
        self.detail.value = (
            f"<b>#{i}</b> partition {row['partition']} · offset {row['offset']} · {_cell(row['timestamp'])} UTC"
            f" · key {html.escape(repr(row['key']))}<pre class=kl-pre>{html.escape(value)}</pre>"
            f"<b>headers</b><pre class=kl-pre>{html.escape(headers)}</pre>")
        self.table.value = html_table(self._frame, i, {j for j, v in enumerate(self._raw) if v is None})

    def _reanchor(self):
        """Another partition choice: stay at the time of the page's first record."""
        self._jump(self._frame["timestamp"].iloc[0] if len(self._frame) else "start")

    def _jump(self, to):
        text = to.strip().lower() if isinstance(to, str) else to
        if text in LAST or text in FIRST:
            return self._go(lambda s, lo, hi: hi, False) if text in LAST else self._go(lambda s, lo, hi: lo, True)
        try:
            at = parse_time(int(text) if isinstance(text, str) and text.isdigit() else to)
        except (TypeError, ValueError) as e:
            raise ValueError(f"jump to an offset (digits) or a time, not {to!r}: {e}") from None
        if at is None:
            raise ValueError("jump to what? Give an offset or a time")
        if isinstance(at, int):
            return self._go(lambda s, lo, hi: {p: at for p in lo}, True)
        ms = int(at.value // 1_000_000)
        self._go(lambda s, lo, hi: {p: hi[p] if o < 0 else o for p, o in s.offsets(self.topic, list(lo), ms).items()},
                 True)

    def _safely(self, act, *args) -> None:
        try:
            act(*args)
        except Exception as e:   # shown, not raised: a widget callback's traceback would go unseen
            self._say(f"{type(e).__name__}: {e} (the page shown is unchanged)", error=True)

    def _say(self, text: str, error: bool = False) -> None:
        self.error = text if error else None
        color = "#c62828" if error else "#555"
        self.message.value = f"<span style='color:{color}'>{html.escape(text)}</span>" if text else ""

    # -- the read ----------------------------------------------------------------------------------
    def _go(self, anchor, forward: bool, stay_if_none: bool = False) -> None:
        """Read and show the page that starts (forward) or ends (backward) at the cut anchor() gives."""
        chosen = self.partitions if self.partition.value == "all" else [self.partition.value]
        with Session(**self.overrides) as s:
            lo = s.offsets(self.topic, chosen, OffsetSpec.EARLIEST)
            hi = s.offsets(self.topic, chosen, OffsetSpec.LATEST)
            cut = {p: min(max(anchor(s, lo, hi).get(p, lo[p]), lo[p]), hi[p]) for p in chosen}
            frame, raw, pos, scanned = self._walk(s, cut, lo, hi, forward)
        edge = all(pos[p] >= hi[p] for p in pos) if forward else all(pos[p] <= lo[p] for p in pos)
        if stay_if_none and frame.empty and edge:
            matching = f" matching the filters ({scanned} scanned)" if scanned else ""
            return self._say(f"no {'newer' if forward else 'older'} records{matching}: this is the "
                             f"{'end' if forward else 'start'}")
        self._start, self._end = (cut, pos) if forward else (pos, cut)
        self._frame, self._raw, self.scanned = frame, raw, scanned
        self.at_start = all(self._start[p] <= lo[p] for p in chosen)
        self.at_end = all(self._end[p] >= hi[p] for p in chosen)
        self._say("")
        self._render(scanned)

    def _walk(self, s: Session, cut: dict, lo: dict, hi: dict, forward: bool):
        """Up to page_size records from `cut`, scanning at most SCAN_PAGES x page_size records."""
        n = self.page_size.value
        pos, frames, raws, shown, scanned, missing, evaluated = dict(cut), [], [], 0, 0, None, False
        for _ in range(SCAN_PAGES):
            ranges = {p: (o, min(o + n, hi[p])) if forward else (max(o - n, lo[p]), o) for p, o in pos.items()}
            ranges = {p: r for p, r in ranges.items() if r[1] > r[0]}
            if not ranges or shown >= n or scanned >= SCAN_PAGES * n:
                break
            cols, _ = fetch_records(s, Plan(self.topic, ranges), limit=None, progress=False)
            frame = columns_frame(cols)
            keep = np.array([_has(k, self.key.value) for k in frame["key"]] if self.key.value
                            else np.ones(len(frame), dtype=bool), dtype=bool)
            if self.query.value.strip() and len(frame):
                try:
                    keep &= frame.index.isin(frame.query(self.query.value).index)
                    evaluated = True
                except UndefinedVariableError as e:   # a field this chunk lacks: none of it matches
                    keep[:], missing = False, e
            runs = {p: [] for p in ranges}
            for i, (p, o, t) in enumerate(zip(cols.partition, cols.offset, cols.timestamp)):
                runs[p].append((t, o, i))
            runs = runs if forward else {p: r[::-1] for p, r in runs.items()}
            open_runs = {p for p, (a, b) in ranges.items() if (b < hi[p] if forward else a > lo[p])}
            used, picked = {p: 0 for p in runs}, []
            for p, (t, o, i) in merge(runs, open_runs, forward):
                used[p], scanned, pos[p] = used[p] + 1, scanned + 1, o + 1 if forward else o
                if keep[i]:
                    picked.append(i)
                if shown + len(picked) >= n or scanned >= SCAN_PAGES * n:
                    break
            for p, run in runs.items():    # a run read to its end: past any gap (compaction, markers)
                if used[p] == len(run):
                    pos[p] = ranges[p][1] if forward else ranges[p][0]
            shown += len(picked)
            frames.append(frame.iloc[picked])
            raws.append([cols.value[i] for i in picked])
        if missing is not None and not evaluated:
            raise missing
        if not forward:
            frames, raws = [f.iloc[::-1] for f in reversed(frames)], [r[::-1] for r in reversed(raws)]
        page = pd.concat(frames, ignore_index=True) if frames else columns_frame(Columns())
        fields = [c for c in page.columns if c not in META_COLUMNS + TAIL_COLUMNS]
        return page[META_COLUMNS + fields + TAIL_COLUMNS], [v for r in raws for v in r], pos, scanned

    def _render(self, scanned: int) -> None:
        f, n = self._frame, len(self._frame)
        spans = " · ".join(f"p{p}: {self._start[p]}-{self._end[p] - 1}" if self._end[p] > self._start[p]
                           else f"p{p}: -" for p in sorted(self._start))
        when = f"{_cell(f['timestamp'].min())} → {_cell(f['timestamp'].max())} UTC · " if n else ""
        filtered = f" of {scanned} scanned (filters)" if scanned != n else ""
        edge = " · the start" if self.at_start else ""
        edge += " · the end" if self.at_end else ""
        self.status.value = (f"<span style='color:#333'>{n} records{filtered} · {when}offsets {spans}"
                             f"{edge}</span>")
        self.record.max = max(n - 1, 0)
        self.selected, self.detail.value = None, ""
        if n:                            # the record # box keeps its number from page to page
            self.select(min(self.record.value, n - 1))
        else:
            self.table.value = "<i>no records here</i>"
