"""Markdown tables: one per workload, a row per (step, tool)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from bench.measure import Outcome

MIB = 1024 * 1024


def fmt_seconds(s: float) -> str:
    return f"{s * 1000:.0f} ms" if s < 1 else f"{s:.2f} s"


def fmt_bytes(n: float) -> str:
    if abs(n) < 1024:
        return f"{n:.0f} B"
    if abs(n) < MIB:
        return f"{n / 1024:.1f} KiB"
    return f"{n / MIB:.1f} MiB"


@dataclass(frozen=True)
class Extra:
    """An additional per-sample number shown as a column (median over runs)."""

    key: str
    header: str
    fmt: Callable[[float], str]


@dataclass
class Table:
    key: str  # "W1"
    title: str
    steps: list[str]
    tools: list[str]
    extras: list[Extra] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    outcomes: dict[tuple[str, str], Outcome] = field(default_factory=dict)
    baseline: str = "ours"  # the row `time vs ours` divides by

    def outcome(self, step: str, tool: str) -> Outcome:
        return self.outcomes.setdefault((step, tool), Outcome())

    def fail(self, tool: str, step: str, message: str) -> None:
        """Mark step as failed and every later step of this tool as not run."""
        after = False
        for name in self.steps:
            out = self.outcome(name, tool)
            if name == step:
                out.error = message
                after = True
            elif after and out.error is None:
                out.error = f"not run ({step} failed)"

    def skip_tool(self, tool: str, message: str) -> None:
        for name in self.steps:
            self.outcome(name, tool).error = message

    def failed(self, tool: str) -> bool:
        return any(self.outcome(s, tool).error for s in self.steps)

    def render(self) -> str:
        headers = ["step", "tool", "median wall", "peak RSS", "time vs ours"]
        headers += [e.header for e in self.extras] + ["notes"]
        lines = [f"### {self.key}: {self.title}", ""]
        lines.append("| " + " | ".join(headers) + " |")
        lines.append("|" + "|".join(" --- " for _ in headers) + "|")
        for step in self.steps:
            ours = (
                self.outcome(step, self.baseline).median_seconds
                if self.baseline in self.tools
                else None
            )
            for tool in self.tools:
                out = self.outcome(step, tool)
                med = out.median_seconds
                rss = out.peak_rss_kib
                cells = [step, tool]
                cells.append(fmt_seconds(med) if med is not None else "–")
                cells.append(fmt_bytes(rss * 1024) if rss is not None else "–")
                if med is not None and ours:
                    cells.append(f"{med / ours:.2f}x")
                else:
                    cells.append("n/a" if med is not None else "–")
                for extra in self.extras:
                    value = out.median_extra(extra.key)
                    cells.append(extra.fmt(value) if value is not None else "–")
                note = out.error or ""
                if not note and len(out.samples) > 1:
                    note = f"{len(out.samples)} samples"
                for extra_note in (out.note, out.warning):
                    if not out.error and extra_note:
                        note = f"{note}; {extra_note}" if note else extra_note
                cells.append(note.replace("|", "\\|"))
                lines.append("| " + " | ".join(cells) + " |")
        if self.notes:
            lines.append("")
            lines.extend(f"- {n}" for n in self.notes)
        return "\n".join(lines) + "\n"
