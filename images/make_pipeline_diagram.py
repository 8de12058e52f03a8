"""Draw the pipeline diagram used by README.rst and the Sphinx docs.

Run from anywhere::

    python images/make_pipeline_diagram.py

It writes ``images/pipeline.png`` (1400 x 700 px) next to this script. Only matplotlib is
needed (Agg backend, no display).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Patch  # noqa: E402

OUT = Path(__file__).resolve().with_name("pipeline.png")

# Figure is 14 x 7 inches at 100 dpi = 1400 x 700 px; data coordinates are inches.
W, H, DPI = 14.0, 7.0, 100

COLORS = {
    "s3": ("#fdf1d6", "#c98a00"),  # (face, edge)
    "task": ("#dbe9f8", "#2f6db5"),
    "classes": ("#eef6e8", "#4c8a2b"),
    "container": ("#f7f7f7", "#8a8a8a"),
}
OUTPUT_COLOR = "#555555"


def box(ax, x, y, w, h, kind, title, body="", *, dashed=False, title_size=11.5, body_size=9.2, z=2):
    """A rounded box with a bold title line and an optional body (left-aligned lines)."""
    face, edge = COLORS[kind]
    patch = FancyBboxPatch(
        (x, y),
        w,
        h,
        boxstyle="round,pad=0.02,rounding_size=0.12",
        facecolor=face,
        edgecolor=edge,
        linewidth=1.8,
        linestyle=(0, (5, 3)) if dashed else "-",
        zorder=z,
    )
    ax.add_patch(patch)
    top = y + h - 0.12
    ax.text(x + w / 2, top, title, ha="center", va="top", fontsize=title_size, fontweight="bold", zorder=z + 1)
    if body:
        ax.text(
            x + 0.12,
            top - 0.34,
            body,
            ha="left",
            va="top",
            fontsize=body_size,
            linespacing=1.35,
            zorder=z + 1,
        )
    return patch


def output_note(ax, x, y, text):
    """Small grey text under a task: the folder it writes below output_dir."""
    ax.text(x, y, text, ha="center", va="top", fontsize=8.6, color=OUTPUT_COLOR, family="monospace", zorder=3)


def arrow(ax, start, end, label="", *, label_offset=(0.0, 0.12), dashed=False, rad=0.0, label_ha="center"):
    ax.add_patch(
        FancyArrowPatch(
            start,
            end,
            arrowstyle="-|>,head_length=7,head_width=4",
            mutation_scale=1.6,
            linewidth=1.6,
            color="#333333",
            linestyle=(0, (4, 3)) if dashed else "-",
            connectionstyle=f"arc3,rad={rad}",
            shrinkA=2,
            shrinkB=2,
            zorder=4,
        )
    )
    if label:
        mx = (start[0] + end[0]) / 2 + label_offset[0]
        my = (start[1] + end[1]) / 2 + label_offset[1]
        ax.text(mx, my, label, ha=label_ha, va="bottom", fontsize=8.6, color="#333333", zorder=5)


def main() -> Path:
    fig = plt.figure(figsize=(W, H), dpi=DPI)
    ax = fig.add_axes([0, 0, 1, 1])
    ax.set_xlim(0, W)
    ax.set_ylim(0, H)
    ax.axis("off")

    ax.text(
        W / 2,
        6.78,
        "scifact-pipeline:  python -m luigi --module pipeline TrainAll",
        ha="center",
        va="top",
        fontsize=15,
        fontweight="bold",
    )

    # ---- column 1: S3 sources -------------------------------------------------------------
    box(ax, 0.15, 3.75, 1.85, 1.35, "s3", "S3", "s3://scifact/\nrelease/latest/\ndata.tar.gz", body_size=8.8)
    box(ax, 0.15, 0.95, 1.85, 1.35, "s3", "S3 (or local)", "pretrained model\nminilm (bundled),\ns3:// prefix/.tar.gz", body_size=8.8)

    # ---- column 2: downloads --------------------------------------------------------------
    box(ax, 2.45, 3.75, 1.75, 1.35, "task", "DownloadData", "download.py\nsafe tar extract,\nsha256 in source.json")
    output_note(ax, 3.325, 3.62, "data/<hash>/")
    box(ax, 2.45, 0.95, 1.75, 1.35, "task", "DownloadModel", "download.py\nconfig, weights,\ntokenizer files")
    output_note(ax, 3.325, 0.82, "pretrained/<hash>/")

    # ---- column 3: preprocessing ----------------------------------------------------------
    box(
        ax,
        4.65,
        3.5,
        2.6,
        2.35,
        "task",
        "Preprocess",
        "preprocess.py  (Dask)\n"
        "• read JSON-lines blocks\n"
        "• join claims with abstracts\n"
        "   on doc_id\n"
        "• build examples\n"
        "   (VeriSci recipe)\n"
        "• write N parquet partitions\n"
        "   per example set:\n"
        "   rationale/label × train/dev",
        body_size=9.0,
    )
    output_note(ax, 5.95, 3.37, "examples/<hash>/\n<kind>/<split>/part=<n>/")

    # ---- column 4: tokenization classes ---------------------------------------------------
    box(
        ax,
        7.7,
        3.55,
        1.75,
        1.75,
        "classes",
        "tokenization.py",
        "RationaleEncoder\nLabelEncoder\n(claim, evidence)\n→ token ids",
        dashed=True,
        title_size=10.5,
    )

    # ---- column 5: training (container with the two tasks) -------------------------------
    box(ax, 9.85, 0.95, 2.35, 4.95, "container", "training.py", title_size=10.5, z=1)
    box(ax, 10.0, 4.6, 2.05, 0.8, "task", "TrainRationale", title_size=10.8)
    ax.text(11.025, 4.78, "(claim, sentence) → 0/1", ha="center", fontsize=8.6, zorder=4)
    box(ax, 10.0, 3.6, 2.05, 0.8, "task", "TrainLabel", title_size=10.8)
    ax.text(11.025, 3.78, "→ CONTRADICT/NOINFO/\nSUPPORT", ha="center", va="bottom", fontsize=8.0, zorder=4, linespacing=1.1)
    ax.text(
        9.98,
        3.42,
        "• one partition in memory\n"
        "   at a time\n"
        "• shuffle buffer, length\n"
        "   grouping\n"
        "• dynamic padding\n"
        "• checkpoints (resume)\n"
        "• best epoch by dev metric",
        ha="left",
        va="top",
        fontsize=9.0,
        linespacing=1.35,
        zorder=3,
    )
    output_note(ax, 11.025, 0.82, "models/<kind>-<hash>/")

    # ---- column 6: report -----------------------------------------------------------------
    box(ax, 12.5, 3.55, 1.38, 1.75, "task", "TrainAll", "report.py\nJSON +\nMarkdown\nreport", title_size=11)
    output_note(ax, 13.19, 3.42, "reports/\ntrain_all-\n<hash>.json\n<hash>.md")

    # ---- arrows ---------------------------------------------------------------------------
    arrow(ax, (2.0, 4.42), (2.45, 4.42))
    arrow(ax, (2.0, 1.62), (2.45, 1.62))
    arrow(ax, (4.2, 4.42), (4.65, 4.42), "files", label_offset=(0.0, 0.06))
    arrow(ax, (7.25, 4.42), (7.7, 4.42))
    arrow(ax, (9.45, 4.42), (9.85, 4.42))
    # pretrained model goes to both training tasks (runs under the tokenization column)
    arrow(ax, (4.2, 1.62), (9.85, 1.62), "pretrained model + tokenizer (each training task)", label_offset=(0.0, 0.06))
    arrow(ax, (12.2, 4.42), (12.5, 4.42))

    legend = [
        Patch(facecolor=COLORS["task"][0], edgecolor=COLORS["task"][1], label="Luigi task"),
        Patch(facecolor=COLORS["classes"][0], edgecolor=COLORS["classes"][1], linestyle="--", label="Python classes used by training"),
        Patch(facecolor=COLORS["s3"][0], edgecolor=COLORS["s3"][1], label="source (S3 or local)"),
    ]
    ax.legend(handles=legend, loc="lower left", bbox_to_anchor=(0.005, 0.005), ncol=3, fontsize=9, frameon=False)
    ax.text(
        W - 0.15,
        0.16,
        "grey: folder written below [scifact] output_dir",
        ha="right",
        va="bottom",
        fontsize=9,
        color=OUTPUT_COLOR,
        family="monospace",
    )

    fig.savefig(OUT, dpi=DPI, facecolor="white")
    plt.close(fig)
    return OUT


if __name__ == "__main__":
    print(main())
