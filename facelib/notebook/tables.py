"""A small table that prints as aligned text and shows as HTML in a notebook."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

__all__ = ["Table"]


class Table:
    """A small table that prints as aligned text and shows as HTML in a notebook."""

    def __init__(self, rows: Sequence[Sequence[Any]], columns: Sequence[str], title: str | None = None):
        self.columns = list(columns)
        self.rows = [list(r) for r in rows]
        self.title = title

    @staticmethod
    def _fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.3f}" if np.isfinite(v) else "-"
        return str(v)

    def __str__(self) -> str:
        cells = [self.columns] + [[self._fmt(v) for v in r] for r in self.rows]
        widths = [max(len(r[i]) for r in cells) for i in range(len(self.columns))]
        lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
                 for r in cells]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(([self.title] if self.title else []) + lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        import html

        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(self._fmt(v))}</td>" for v in r) + "</tr>"
                       for r in self.rows)
        cap = f"<caption>{html.escape(self.title)}</caption>" if self.title else ""
        return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
