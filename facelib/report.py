"""The ``test`` job: embed, run the protocols, compare with the pixel baseline, write the report.

Writes ``metrics.json`` (every figure), ``classification_report.txt``,
``confusion_matrix.png``, ``roc.png`` and ``per_distortion.png`` into the output folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from facelib.config import EvalConfig
from facelib.data import FaceFolder, scan_folder
from facelib.embed import embed_folder, resolve_device
from facelib.errors import DataError
from facelib.io import atomic_path, write_json
from facelib.model import load_checkpoint

IDENTIFICATION = ("closed", "gallery", "cross-photo")


@dataclass
class TestReport:
    """What ``run_test`` computed: the JSON metrics, raw results (with arrays) and files written."""

    metrics: dict[str, Any]
    results: dict[str, dict[str, Any]]
    baselines: dict[str, dict[str, Any]]
    probes: Any  # EmbeddingSet of the probe folder
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def primary(self) -> dict[str, Any]:
        return self.results[self.metrics["protocol"]]


def choose_protocols(cfg: EvalConfig, train: FaceFolder | None, val: FaceFolder) -> tuple[str, list[str], str]:
    """The primary protocol, every identification protocol to report, and why."""
    from facelib.evaluate import detect_protocol

    if cfg.protocol == "auto":
        primary, reason = detect_protocol(train.identities if train is not None else None, val.identities)
    else:
        primary, reason = cfg.protocol, f"--protocol {cfg.protocol}"
    if primary == "closed" and train is None:
        raise DataError("the closed protocol needs --train-data with the gallery identities")
    has_distortions = val.report.n_distorted > 0
    others = [p for p in ("cross-photo", "gallery") if p != primary and (p != "gallery" or has_distortions)]
    if primary == "verification":
        return primary, [p for p in others if p != "verification"], reason
    return primary, [primary] + others, reason


def run_test(cfg: EvalConfig, print_report: bool = True, log: Callable[[str], None] = print) -> TestReport:
    """Evaluate ``cfg.checkpoint`` on ``cfg.data`` and write the report files into ``cfg.out``."""
    from sklearn.metrics import classification_report

    from facelib import plots
    from facelib.evaluate import format_result, pixel_baseline, run_protocol, to_jsonable

    device = resolve_device(cfg.device)
    model, spec, ckpt = load_checkpoint(cfg.checkpoint, device)
    log(f"checkpoint {cfg.checkpoint}: {spec.backbone}, {spec.embedding_dim}-d embeddings, "
        f"{spec.image_size} px input")
    val = scan_folder(cfg.data)
    log(val.report.summary())
    train = None
    if cfg.train_data and Path(cfg.train_data).is_dir() and cfg.protocol in ("auto", "closed"):
        train = scan_folder(cfg.train_data, include_distortions=False)
    elif cfg.protocol == "closed":
        raise DataError(f"the closed protocol needs the train folder, not found: {cfg.train_data}")
    primary, identification, reason = choose_protocols(cfg, train, val)
    log(f"protocol {primary}: {reason}")

    kw = dict(batch_size=cfg.batch_size, workers=cfg.workers, device=device, progress=True)
    probes = embed_folder(model, spec, val, **kw)
    train_set = embed_folder(model, spec, train, **kw) if primary == "closed" else None

    results: dict[str, dict[str, Any]] = {}
    baselines: dict[str, dict[str, Any]] = {}
    for name in list(identification):
        ts = train_set if name == "closed" else None
        try:
            results[name] = run_protocol(name, probes, ts, gallery=cfg.gallery)
        except ValueError as e:  # e.g. cross-photo on a folder where every identity has one photo
            log(f"{name} skipped: {e}")
            identification.remove(name)
            continue
        if cfg.baseline:
            baselines[name] = pixel_baseline(name, probes, ts, gallery=cfg.gallery)
    if not identification:
        raise DataError(f"{cfg.data}: no identification protocol can be scored on this folder (see above)")
    for name in ("verification", "open-set"):
        try:
            results[name] = run_protocol(name, probes, gallery=cfg.gallery, seed=cfg.seed)
        except ValueError as e:  # e.g. a single identity: no impostor pairs, no held-out identities
            log(f"{name} skipped: {e}")

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    main = results[primary] if primary in results else results[identification[0]]
    main_name = main["protocol"]
    if main_name != primary:
        log(f"primary protocol: {main_name} ({primary} could not be scored)")
    arrays = main["_arrays"]

    log("")
    log(f"{'protocol':<13} {'top-1':>6} {'top-5':>6} {'macro-F1':>8} {'probes':>7}  pixel-baseline top-1")
    for name in identification:
        r = results[name]
        b = baselines.get(name, {}).get("top1")
        log(f"{name:<13} {r['top1']:>6.3f} {r['top5']:>6.3f} {r['macro_f1']:>8.3f} {r['n_probes']:>7}  "
            + (f"{b:.3f}" if b is not None else "-") + ("   <- primary" if name == main_name else ""))
    for name in ("verification", "open-set"):
        if name in results:
            log(format_result(results[name]))
    if main.get("per_distortion"):
        base_pd = baselines.get(main_name, {}).get("per_distortion", {})
        log(f"per-distortion top-1 ({main_name}): " + "  ".join(
            f"{k} {v:.2f}" + (f" (pixel {base_pd[k]:.2f})" if k in base_pd else "")
            for k, v in main["per_distortion"].items()))
    for name in identification:
        log(f"  {name}: {results[name]['description']}")

    text = classification_report(arrays["y_true"], arrays["y_pred"], zero_division=0)
    with atomic_path(out / "classification_report.txt") as tmp:
        tmp.write_text(text)
    if print_report:
        log(f"\nclassification report ({main_name}):\n{text}")

    files = {"classification_report": out / "classification_report.txt"}
    labels = sorted(set(arrays["y_true"]) | set(arrays["y_pred"]) - {""})
    plots.confusion_matrix_figure(arrays["y_true"], arrays["y_pred"], labels=labels, out=out / "confusion_matrix.png")
    files["confusion_matrix"] = out / "confusion_matrix.png"
    if main.get("per_distortion"):
        plots.per_distortion_figure(main["per_distortion"], out=out / "per_distortion.png")
        files["per_distortion"] = out / "per_distortion.png"
    if "verification" in results:
        v = results["verification"]["_arrays"]
        plots.roc_figure(v["scores"], v["same"], out=out / "roc.png")
        files["roc"] = out / "roc.png"

    metrics: dict[str, Any] = {
        "protocol": main_name,
        "requested_protocol": cfg.protocol,
        "protocol_reason": reason,
        "gallery": cfg.gallery,
        "top1": main["top1"],
        "top5": main["top5"],
        "macro_f1": main["macro_f1"],
        "n_probes": main["n_probes"],
        "n_gallery": main["n_gallery"],
        "per_distortion": main.get("per_distortion", {}),
        "pixel_baseline": to_jsonable(baselines.get(main_name, {})),
        "protocols": {k: to_jsonable(v) for k, v in results.items()},
        "pixel_baselines": {k: to_jsonable(v) for k, v in baselines.items()},
        "checkpoint": str(cfg.checkpoint),
        "model": {"backbone": spec.backbone, "embedding_dim": spec.embedding_dim, "image_size": spec.image_size,
                  "trained_epochs": ckpt.get("epoch")},
        "data": val.report.to_dict(),
        "train_data": train.report.to_dict() if train is not None else None,
    }
    write_json(out / "metrics.json", metrics)
    files["metrics"] = out / "metrics.json"
    log(f"\nwrote {', '.join(str(p) for p in files.values())}")
    return TestReport(metrics, results, baselines, probes, files)

