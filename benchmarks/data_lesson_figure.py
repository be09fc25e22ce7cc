"""The data lesson of the course as one figure, from measured runs on FACECOM (no training here).

Left: the default recipe for 30 CPU-minutes on FACECOM's 235 multi-photo training people
(`out/curve30.json`, lab notes 0.7): top-1 on its own training people climbs to 0.95 while on
new people it stays at pixel level. Right: cross-photo top-1 on FACECOM val (all-images gallery)
of what changes it: the face crop and more training people at equal steps (`out/scale_235.json`,
`out/scale_4417.json`, lab notes 9.5), the 30-minute run on every source over seeds 0-2, with one view
and with the flip test (`out/flip_seeds.json`, lab notes 9.7), and the pretrained peer (lab notes 0.5,
`out/peer_median.json`), with the smoke profile
(`out/smoke_facecom.json`) for where a notebook run sits.

    python benchmarks/data_lesson_figure.py            # writes notebooks/figures/data_lesson.png

Prints the numbers it drew as a markdown table, with their sources.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
FIGURE = HERE.parent / "notebooks" / "figures" / "data_lesson.png"

# Figures in the lab notes without a JSON of their own (the run was `facelib train` + `score_npz.py`, or the
# peer table of 0.5 before the script stored its results); each names its section.
PIXEL_WHOLE_FRAME = (0.134, "lab notes 0.2 (pixel cosine, whole frame)")
PIXEL_ON_TRAINING_PEOPLE = (0.109, "lab notes 0.7 (pixel cosine on the training-people subset)")
DLIB = (0.661, "lab notes 0.5 (dlib ResNet descriptor, pretrained on ~3M faces)")


def _run(name: str) -> dict:
    return json.loads((OUT / f"{name}.json").read_text())["runs"][0]


def seeds_30_min(flip: bool) -> float:
    """Mean cross-photo top-1 of the three 30-minute Done-when checkpoints (seeds 0-2), one view or flip test."""
    runs = json.loads((OUT / "flip_seeds.json").read_text())
    values = [r["top1_all"] for name, r in runs.items() if name.endswith(f"flip={flip}") and "pixel" not in name]
    assert len(values) == 3, values
    return float(np.mean(values))


def bars() -> list[tuple[str, float, str, str]]:
    """(label, cross-photo top-1 with the all-images gallery, colour, source) for the right panel."""
    smoke, curve = _run("smoke_facecom"), _run("curve30")
    s235, s4417 = _run("scale_235"), _run("scale_4417")
    pixel_crop = json.loads((OUT / "scale_235.json").read_text())["baselines"]
    pixel_crop = next(v for k, v in pixel_crop.items() if k.startswith("pixel"))["top1_all"]
    median = json.loads((OUT / "peer_median.json").read_text())["results"]
    median = next(v for k, v in median.items() if k.startswith("dlib"))["cross_all"]
    return [
        ("pixels, whole frame", PIXEL_WHOLE_FRAME[0], "lightgrey", PIXEL_WHOLE_FRAME[1]),
        ("smoke profile (notebooks)\nwhole frame, 1.5 min", smoke["top1_all"], "tab:red", "out/smoke_facecom.json"),
        ("default, 235 people\nwhole frame, 30 min", curve["top1_all"], "tab:blue", "out/curve30.json"),
        ("pixels, face crop 0.55", pixel_crop, "darkgrey", "out/scale_235.json (baseline)"),
        ("crop 0.55, 235 people\n966 steps", s235["top1_all"], "tab:blue", "out/scale_235.json"),
        ("crop 0.55, 4,417 people\n966 steps", s4417["top1_all"], "tab:green", "out/scale_4417.json"),
        ("crop 0.55, 4,417 people\n30 min, seeds 0-2", seeds_30_min(False), "tab:green",
         "out/flip_seeds.json (one view; lab notes 9.7)"),
        ("the same\n+ flip test", seeds_30_min(True), "tab:olive", "out/flip_seeds.json (flip test; lab notes 9.7)"),
        ("dlib, pretrained\n(~7,500 people)", DLIB[0], "tab:purple", DLIB[1]),
        ("dlib + median filter", median, "tab:purple", "out/peer_median.json"),
    ]


def figure() -> Figure:
    curve = _run("curve30")["curve"]
    minutes = np.array([c["train_s"] for c in curve]) / 60
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=(1, 1.3))
    left.plot(minutes, [c["train_top1_all"] for c in curve], "o-", ms=3, c="tab:orange",
              label="its own 235 training people")
    left.plot(minutes, [c["top1_all"] for c in curve], "o-", ms=3, c="tab:blue", label="64 new people (FACECOM val)")
    left.axhline(PIXEL_WHOLE_FRAME[0], c="grey", ls="--", lw=1, label=f"pixels on new people ({PIXEL_WHOLE_FRAME[0]})")
    left.axhline(PIXEL_ON_TRAINING_PEOPLE[0], c="tab:orange", ls=":", lw=1,
                 label=f"pixels on training people ({PIXEL_ON_TRAINING_PEOPLE[0]})")
    left.set(xlabel="training minutes (2-core CPU, ResNet-18, 64 px, random init)",
             ylabel="cross-photo top-1 (all-images gallery)", ylim=(0, 1), xlim=(0, 31))
    left.set_title("the default memorises its 235 people (lab notes 0.7)", fontsize=10)
    left.grid(alpha=0.3)
    left.legend(fontsize=8, loc="center right", bbox_to_anchor=(1, 0.38))
    rows = bars()
    y = np.arange(len(rows))[::-1]
    right.barh(y, [r[1] for r in rows], color=[r[2] for r in rows])
    for yi, (_, v, _, _) in zip(y, rows):
        right.text(v + 0.01, yi, f"{v:.3f}", va="center", fontsize=8)
    right.set_yticks(y, [r[0] for r in rows], fontsize=8)
    right.set(xlim=(0, 1), xlabel="cross-photo top-1 on FACECOM val (all-images gallery)")
    right.set_title("new people: what the face crop, more people and pretraining change", fontsize=10)
    right.grid(alpha=0.3, axis="x")
    return fig


def main(argv: list[str]) -> None:
    out = Path(argv[0]) if argv else FIGURE
    out.parent.mkdir(parents=True, exist_ok=True)
    figure().savefig(out, dpi=80)
    print(f"wrote {out} ({out.stat().st_size / 1e3:.0f} kB)")
    print("| run | cross-photo top-1 (all-images gallery) | source |\n| :--- | ---: | :--- |")
    for label, value, _, source in bars():
        print(f"| {label.replace(chr(10), ', ')} | {value:.3f} | {source} |")


if __name__ == "__main__":
    main(sys.argv[1:])
