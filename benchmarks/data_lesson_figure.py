"""The data lesson of the course as one figure, from measured runs on FACECOM (no training here).

Every panel compares like with like: one input framing, one number of views, one budget per panel, and
every point is a cross-photo top-1 on FACECOM val (all-images gallery) with its 95% interval (bootstrap
over the 64 probe people).

Left: the default recipe for 30 CPU-minutes on FACECOM's 235 multi-photo training people, whole frame,
one view (`out/curve30.json`, lab notes 0.7): top-1 on its own training people climbs to 0.95 while on
new people it stays at pixel level. Middle: the number of training people at equal steps (966), one
view, with the face crop (central 55%) and on the whole frame (`out/scale_*.json`, lab notes 9.11).
Right: 30 minutes with the face crop and the flip test, FACECOM alone (seeds 0-1, `out/flip_fonly*.json`)
against every source (seeds 0-2, `out/flip_seeds.json`; lab notes 9.7), with the pretrained peer for
scale (lab notes 0.5, `out/peer_median.json`).

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

# Figures in the lab notes without a JSON of their own (the run was `facelib train` + `score_npz.py`, the
# interval was printed but not stored, or the peer table of 0.5 predates the script's JSON); each names
# its section. Intervals: 95%, bootstrap over the 64 probe people.
PIXEL_WHOLE_FRAME = (0.134, (0.067, 0.202), "lab notes 0.2 / 9.11 (pixel cosine, whole frame)")
PIXEL_CROP = (0.167, (0.099, 0.235), "lab notes 9.5 / 9.11 (pixel cosine, face crop 0.55)")
PIXEL_ON_TRAINING_PEOPLE = (0.109, "lab notes 0.7 (pixel cosine on the training-people subset)")
DLIB = (0.661, "lab notes 0.5 (dlib ResNet descriptor, pretrained on ~3M faces)")
# lab notes 9.7: the flip-test interval of each 30-minute checkpoint (seed -> interval); seed 1 of FACECOM
# alone was scored without one.
INTERVALS_30_MIN = {("every source", 0): (0.222, 0.382), ("every source", 1): (0.216, 0.383),
                    ("every source", 2): (0.234, 0.409), ("FACECOM alone", 0): (0.128, 0.273)}
PEOPLE = (235, 1000, 2000, 4417)


def _runs(name: str) -> list[dict]:
    return json.loads((OUT / f"{name}.json").read_text())["runs"]


def _run(name: str) -> dict:
    return _runs(name)[0]


def people_curve() -> dict[str, list[tuple[int, float, tuple[float, float]]]]:
    """(training people, top-1 all-images gallery, 95% interval) at 966 steps, one view, cropped and uncropped."""
    def pick(name: str, cropped: bool) -> dict:
        return next(r for r in _runs(name) if ("face_crop=1" in r["recipe"]) != cropped)

    files = {235: ("scale_235", "scale_235u"), 1000: ("scale_1000", "scale_1000"),
             2000: ("scale_2000", "scale_2000"), 4417: ("scale_4417", "scale_4417u")}
    curve: dict[str, list] = {"face crop 0.55": [], "whole frame": []}
    for n in PEOPLE:
        for label, name, cropped in (("face crop 0.55", files[n][0], True), ("whole frame", files[n][1], False)):
            r = pick(name, cropped)
            curve[label].append((n, r["top1_all"], tuple(r["top1_all_ci"])))
    return curve


def thirty_minutes() -> dict[str, list[tuple[int, float, tuple[float, float] | None]]]:
    """(seed, top-1 all-images gallery with the flip test, interval or None) of the 30-minute runs, face crop."""
    seeds = json.loads((OUT / "flip_seeds.json").read_text())
    every = [(seed, seeds[f"{m}/tb_model.pth flip=True"]["top1_all"]) for seed, m in ((0, "m0"), (1, "m"), (2, "m2"))]
    alone = [(seed, json.loads((OUT / f"{f}.json").read_text())[f"{m}/tb_model.pth flip=True"]["top1_all"])
             for seed, f, m in ((0, "flip_fonly0", "fonly0"), (1, "flip_fonly", "fonly"))]
    return {group: [(s, v, INTERVALS_30_MIN.get((group, s))) for s, v in runs]
            for group, runs in (("FACECOM alone", alone), ("every source", every))}


def one_view_30_minutes(group: str) -> float:
    """The same checkpoints' mean top-1 with one view (no flip test)."""
    if group == "every source":
        seeds = json.loads((OUT / "flip_seeds.json").read_text())
        return float(np.mean([seeds[f"{m}/tb_model.pth flip=False"]["top1_all"] for m in ("m0", "m", "m2")]))
    return float(np.mean([json.loads((OUT / f"{f}.json").read_text())[f"{m}/tb_model.pth flip=False"]["top1_all"]
                          for f, m in (("flip_fonly0", "fonly0"), ("flip_fonly", "fonly"))]))


def median_peer() -> float:
    median = json.loads((OUT / "peer_median.json").read_text())["results"]
    return float(next(v for k, v in median.items() if k.startswith("dlib"))["cross_all"])


def _memorising(ax) -> None:
    curve = _run("curve30")["curve"]
    minutes = np.array([c["train_s"] for c in curve]) / 60
    ax.plot(minutes, [c["train_top1_all"] for c in curve], "o-", ms=3, c="tab:orange",
            label="its own 235 training people")
    ax.plot(minutes, [c["top1_all"] for c in curve], "o-", ms=3, c="tab:blue", label="64 new people (FACECOM val)")
    lo, hi = _run("curve30")["top1_all_ci"]
    ax.errorbar(minutes[-1], curve[-1]["top1_all"], [[curve[-1]["top1_all"] - lo], [hi - curve[-1]["top1_all"]]],
                c="tab:blue", capsize=3)
    ax.axhline(PIXEL_WHOLE_FRAME[0], c="grey", ls="--", lw=1, label=f"pixels on new people ({PIXEL_WHOLE_FRAME[0]})")
    ax.axhline(PIXEL_ON_TRAINING_PEOPLE[0], c="tab:orange", ls=":", lw=1,
               label=f"pixels on training people ({PIXEL_ON_TRAINING_PEOPLE[0]})")
    ax.set(xlabel="training minutes (2-core CPU)", ylabel="cross-photo top-1 (all-images gallery)",
           ylim=(0, 1), xlim=(0, 31))
    ax.set_title("1. it memorises its 235 people\n(whole frame, one view; lab notes 0.7)", fontsize=9)
    ax.legend(fontsize=7, loc="center right", bbox_to_anchor=(1, 0.4))


def _more_people(ax) -> None:
    for (label, points), colour in zip(people_curve().items(), ("tab:green", "tab:blue")):
        n, v, ci = zip(*points)
        err = [[vi - c[0] for vi, c in zip(v, ci)], [c[1] - vi for vi, c in zip(v, ci)]]
        shift = 1.03 if label == "whole frame" else 0.97    # side by side, so the bars do not hide each other
        ax.errorbar(np.array(n) * shift, v, err, fmt="o-", ms=4, capsize=3, c=colour, label=f"{label}, trained")
    for (value, _, _), style, label in ((PIXEL_CROP, "--", "face crop"), (PIXEL_WHOLE_FRAME, ":", "whole frame")):
        ax.axhline(value, c="grey", ls=style, lw=1, label=f"pixels, {label} ({value})")
    ax.set_xscale("log")
    ax.set_xticks(PEOPLE, [f"{n:,}" for n in PEOPLE])
    ax.minorticks_off()
    ax.set(xlabel="training people with 2+ photos", ylim=(0, 0.45))
    ax.set_title("2. more people, equal steps (966)\n(one view, one seed; lab notes 9.11)", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")


def _thirty_minutes(ax) -> None:
    for x, (_group, runs) in enumerate(thirty_minutes().items()):
        for j, (_seed, v, ci) in enumerate(runs):
            xi = x + (j - (len(runs) - 1) / 2) * 0.12
            err = None if ci is None else [[v - ci[0]], [ci[1] - v]]
            ax.errorbar(xi, v, err, fmt="o", ms=4, capsize=3, c="tab:green")
        mean = float(np.mean([v for _, v, _ in runs]))
        ax.hlines(mean, x - 0.3, x + 0.3, colors="black", lw=2)
        ax.text(x + 0.32, mean, f"{mean:.3f}", va="center", fontsize=8)
    for value, label in ((DLIB[0], "dlib, pretrained"), (median_peer(), "dlib + median filter")):
        ax.axhline(value, c="tab:purple", ls="-.", lw=1)
        ax.text(1.55, value, f"{label} {value:.3f}", ha="right", va="bottom", fontsize=7, color="tab:purple")
    ax.axhline(PIXEL_CROP[0], c="grey", ls="--", lw=1)
    ax.text(1.55, PIXEL_CROP[0], "pixels, face crop", ha="right", va="bottom", fontsize=7, color="grey")
    ax.set_xticks([0, 1], ["FACECOM alone\n235 people, seeds 0-1", "every source\n4,417 people, seeds 0-2"],
                  fontsize=8)
    ax.set(xlim=(-0.5, 1.6), ylim=(0, 0.9))
    ax.set_title("3. more people, equal time (30 min)\n(face crop, flip test; lab notes 9.7)", fontsize=9)


def figure() -> Figure:
    fig = Figure(figsize=(13, 4.2), layout="constrained")
    axes = fig.subplots(1, 3, width_ratios=(1, 1, 0.9))
    _memorising(axes[0])
    _more_people(axes[1])
    _thirty_minutes(axes[2])
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.suptitle("FACECOM val, 64 new people: cross-photo top-1 (all-images gallery) with 95% intervals; "
                 "ResNet-18, 64 px, random init, 2-core CPU", fontsize=9)
    return fig


def table() -> list[tuple[str, float, tuple[float, float] | None, str]]:
    """(run, top-1 all-images gallery, 95% interval or None, source) of every point drawn."""
    curve = _run("curve30")
    rows = [("pixels, whole frame", PIXEL_WHOLE_FRAME[0], PIXEL_WHOLE_FRAME[1], PIXEL_WHOLE_FRAME[2]),
            ("default, 235 people, whole frame, one view, 30 min", curve["top1_all"], tuple(curve["top1_all_ci"]),
             "out/curve30.json"),
            ("pixels, face crop 0.55", PIXEL_CROP[0], PIXEL_CROP[1], PIXEL_CROP[2])]
    for label, points in people_curve().items():
        rows += [(f"{label}, {n:,} people, one view, 966 steps", v, ci, "out/scale_*.json") for n, v, ci in points]
    for group, runs in thirty_minutes().items():
        rows += [(f"{group}, face crop, flip test, 30 min, seed {s}", v, ci, "out/flip_*.json") for s, v, ci in runs]
    rows += [("dlib, pretrained", DLIB[0], None, DLIB[1]), ("dlib + median filter", median_peer(), None,
                                                             "out/peer_median.json")]
    return rows


def main(argv: list[str]) -> None:
    out = Path(argv[0]) if argv else FIGURE
    out.parent.mkdir(parents=True, exist_ok=True)
    figure().savefig(out, dpi=72)
    print(f"wrote {out} ({out.stat().st_size / 1e3:.0f} kB)")
    print("| run | cross-photo top-1 (all-images gallery) | 95% interval | source |\n| :--- | ---: | :--- | :--- |")
    for label, value, ci, source in table():
        print(f"| {label} | {value:.3f} | {'' if ci is None else f'{ci[0]:.3f}-{ci[1]:.3f}'} | {source} |")


if __name__ == "__main__":
    main(sys.argv[1:])
