"""Helpers shared by bench/report.py, bench/whole_layer.py and bench/seed_grid.py: JSON-lines
results and matplotlib panels."""
import json
import sys


def read_jsonl(path):
    """The JSON objects of a results file, one per non-blank line."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def pyplot(what):
    """matplotlib.pyplot on the Agg backend, or None (with a note naming `what`) without
    matplotlib (Debian: apt-get install python3-matplotlib)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"report: matplotlib missing (apt-get install python3-matplotlib); no {what}",
              file=sys.stderr)
        return None
    return plt


def speedup_axes(ax, xlabel, ylabel):
    """A speed-up panel against W: log2 x axis, the 1x line, grid and legend."""
    ax.axhline(1, color="gray", lw=0.8)
    ax.set_xscale("log", base=2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)


def save(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=100)
