"""The ``test`` job: embed, run the protocols, compare with the pixel baseline, write the report.

Writes ``metrics.json`` (every figure, and ``threshold``: the cosine score at the target FAR on the
verification pairs, which ``facelib enroll`` reads), ``classification_report.txt`` and
``confusion_matrix.png`` (over the identities that have probes), ``roc.png`` and
``per_distortion.png`` into the output folder. A probe matched to a gallery-only identity (a distractor)
counts against its true identity's recall; because such predictions fall outside the report's rows,
sklearn prints a "micro avg" row (= top-1 over the probes) where it would print "accuracy".

With ``--protocol verification`` the headline figures of ``metrics.json`` are the verification ones
(``roc_auc``, ``eer``, ``tar_at_far_*``); the identification protocols are still scored and listed,
and the classification report and confusion matrix come from the first of them (``report_protocol``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from facelib.config import EvalConfig
from facelib.data.folders import FaceFolder, scan_folder
from facelib.errors import DataError, NotApplicable
from facelib.evaluation.embedding_set import EmbeddingSet
from facelib.evaluation.extract import embed_folder
from facelib.evaluation.results import Identification, Result, Verification
from facelib.io import atomic_path, write_json
from facelib.models.checkpoint import load_checkpoint, model_fingerprint
from facelib.models.network import EmbeddingNet, ModelSpec
from facelib.models.transforms import describe_framing
from facelib.runtime import resolve_device


@dataclass
class TestReport:
    """What ``run_test`` computed: the JSON metrics, raw results (with arrays) and files written."""

    metrics: dict[str, Any]
    results: dict[str, Result]
    baselines: dict[str, Result]
    probes: EmbeddingSet
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def primary(self) -> Result:
        return self.results[self.metrics["protocol"]]


@dataclass
class Scores:
    """The protocols scored on one folder: ``results`` and pixel ``baselines`` by protocol name; the
    ``identification`` protocols that could be scored (in report order); ``main``: the headline protocol."""

    results: dict[str, Result]
    baselines: dict[str, Result]
    identification: list[str]
    main: str = ""

    @property
    def report_result(self) -> Identification:
        """The identification result behind the classification report and the confusion matrix."""
        return self.results[self.main if self.main in self.identification else self.identification[0]]


def choose_protocols(cfg: EvalConfig, train: FaceFolder | None, val: FaceFolder) -> tuple[str, list[str], str]:
    """The primary protocol, every identification protocol to report, and why."""
    from facelib.evaluation.protocols import detect_protocol

    if cfg.protocol == "auto":
        primary, reason = detect_protocol(train.identities if train is not None else None, val.identities)
    else:
        primary, reason = cfg.protocol, f"protocol={cfg.protocol!r}"
    if primary == "closed" and train is None:
        raise DataError("the closed protocol needs train_data: the folder of the gallery identities",
                        fields=("train_data",))
    has_distortions = val.report.n_distorted > 0
    others = [p for p in ("cross-photo", "gallery") if p != primary and (p != "gallery" or has_distortions)]
    if primary == "verification":
        return primary, others, reason
    return primary, [primary] + others, reason


def decision_threshold(v: Verification, target_far: float) -> dict[str, Any]:
    """The cosine threshold at ``target_far`` on verification pairs, with the rates it gives there."""
    t = v.threshold_at_far[target_far]
    accept = v.scores >= t
    return {"value": float(t), "target_far": float(target_far), "far": float(accept[~v.same].mean()),
            "tar": float(accept[v.same].mean()), "source": f"verification pairs ({v.n_genuine} genuine / "
            f"{v.n_impostor} impostor), seed {v.seed}"}


def run_test(cfg: EvalConfig, print_report: bool = True, log: Callable[[str], None] = print) -> TestReport:
    """Evaluate ``cfg.checkpoint`` on ``cfg.data`` and write the report files into ``cfg.out``."""
    device = resolve_device(cfg.device)
    model, spec, ckpt = load_checkpoint(cfg.checkpoint, device)
    log(f"checkpoint {cfg.checkpoint}: {spec.backbone}, {spec.embedding_dim}-d embeddings, "
        + describe_framing(spec) + (" (the pixel baseline frames the images the same way)" if spec.face_crop < 1
                                    else ""))
    val, train = scan_folders(cfg, log)
    primary, identification, reason = choose_protocols(cfg, train, val)
    log(f"protocol {primary}: {reason}")
    kw = dict(batch_size=cfg.batch_size, workers=cfg.workers, device=device, progress=True)
    probes = embed_folder(model, spec, val, **kw)
    train_set = embed_folder(model, spec, train, **kw) if primary == "closed" else None
    scores = score_protocols(cfg, spec, probes, train_set, primary, identification, log)
    log_scores(scores, log)
    retrieval = retrieval_figures(cfg, spec, probes, scores, log)
    threshold = decision_threshold(scores.results["verification"], cfg.target_far) \
        if "verification" in scores.results else None
    if threshold is not None:
        log(f"decision threshold {threshold['value']:.4f}: FAR {threshold['far']:.4f} (target "
            f"{cfg.target_far:g}), TAR {threshold['tar']:.3f} on the verification pairs")
    out = Path(cfg.out)
    files = write_figures(out, scores, print_report, log)
    metrics = dict(headline(cfg, scores, reason), threshold=threshold, retrieval=retrieval,
                   **run_record(cfg, model, spec, ckpt, val, train))
    write_json(out / "metrics.json", metrics)
    files["metrics"] = out / "metrics.json"
    log(f"\nwrote {', '.join(str(p) for p in files.values())}")
    return TestReport(metrics, scores.results, scores.baselines, probes, files)


def scan_folders(cfg: EvalConfig, log: Callable[[str], None]) -> tuple[FaceFolder, FaceFolder | None]:
    """The probe folder, and the training folder (clean photos) where the protocol may need it."""
    val = scan_folder(cfg.data)
    log(val.report.summary())
    train = None
    if cfg.train_data and Path(cfg.train_data).is_dir() and cfg.protocol in ("auto", "closed"):
        train = scan_folder(cfg.train_data, include_distortions=False)
    elif cfg.protocol == "closed":
        raise DataError(f"the closed protocol needs the train folder, not found: {cfg.train_data}",
                        fields=("train_data",))
    return val, train


def score_protocols(cfg: EvalConfig, spec: ModelSpec, probes: EmbeddingSet, train_set: EmbeddingSet | None,
                    primary: str, identification: list[str], log: Callable[[str], None]) -> Scores:
    """Every protocol the data supports, with its pixel baseline; a protocol the data cannot support
    (:class:`~facelib.errors.NotApplicable`) is skipped and said so."""
    from facelib.evaluation.baselines import pixel_baseline
    from facelib.evaluation.protocols import run_protocol

    results: dict[str, Result] = {}
    baselines: dict[str, Result] = {}
    fars = tuple(dict.fromkeys((1e-1, 1e-2, 1e-3, float(cfg.target_far))))
    runs = [(name, dict(train=train_set if name == "closed" else None, gallery=cfg.gallery)) for name in identification]
    runs += [("verification", dict(seed=cfg.seed, fars=fars)), ("open-set", dict(seed=cfg.seed, gallery=cfg.gallery))]
    for name, kw in runs:
        try:
            results[name] = run_protocol(name, probes, **kw)
        except NotApplicable as e:  # e.g. cross-photo where every identity has one photo
            log(f"{name} skipped: {e}")
            continue
        if cfg.baseline and (name in identification or name == primary == "verification"):
            baselines[name] = pixel_baseline(name, probes, face_crop=spec.face_crop, **kw)
    scored = [name for name in identification if name in results]
    if primary == "verification" and "verification" not in results:
        raise DataError(f"{cfg.data}: verification cannot be scored on this folder (see above)")
    if not scored:
        raise DataError(f"{cfg.data}: no identification protocol can be scored on this folder (see above)")
    main = primary if primary in results else scored[0]
    if main != primary:
        log(f"primary protocol: {main} ({primary} could not be scored)")
    return Scores(results, baselines, scored, main)


def log_scores(scores: Scores, log: Callable[[str], None]) -> None:
    """The protocol table beside the pixel baseline, intervals, verification/open-set lines, per distortion."""
    results, baselines, main = scores.results, scores.baselines, scores.main
    log("")
    log(f"{'protocol':<13} {'top-1':>6} {'top-5':>6} {'macro-F1':>8} {'probes':>7}  pixel-baseline top-1")
    for name in scores.identification:
        r, b = results[name], baselines.get(name)
        log(f"{name:<13} {r.top1:>6.3f} {r.top5:>6.3f} {r.macro_f1:>8.3f} {r.n_probes:>7}  "
            + (f"{b.top1:.3f}" if b is not None else "-") + ("   <- primary" if name == main else ""))
    if main in scores.identification:
        lo, hi = results[main].top1_interval
        log(f"{main} top-1 95% interval {lo:.3f}-{hi:.3f} (bootstrap over its "
            f"{results[main].n_identities} probe identities)")
    for name in ("verification", "open-set"):
        if name in results:
            log(results[name].summary() + ("   <- primary" if name == main else ""))
    if "verification" in baselines:
        log("pixel baseline " + baselines["verification"].summary())
    ident = scores.report_result
    if ident.per_distortion:
        b = baselines.get(ident.protocol)
        base_pd = b.per_distortion if b is not None else {}
        log(f"per-distortion top-1 ({ident.protocol}): " + "  ".join(
            f"{k} {v:.2f}" + (f" (pixel {base_pd[k]:.2f})" if k in base_pd else "")
            for k, v in ident.per_distortion.items()))
    for name in scores.identification:
        log(f"  {name}: {results[name].description}")


def retrieval_figures(cfg: EvalConfig, spec: ModelSpec, probes: EmbeddingSet, scores: Scores,
                      log: Callable[[str], None]) -> dict[str, Any]:
    """Cross-photo mAP / Recall@K over every other photo of the person (model, and pixels with the baseline)."""
    from facelib.evaluation.baselines import pixel_embedding_set
    from facelib.evaluation.protocols import cross_photo_retrieval

    if "cross-photo" not in scores.identification:
        return {}
    retrieval = {"model": cross_photo_retrieval(probes)}
    if cfg.baseline:
        retrieval["pixel"] = cross_photo_retrieval(pixel_embedding_set(probes, face_crop=spec.face_crop))
    log("cross-photo retrieval (all clean images ranked): " + "   ".join(
        f"{k} mAP {r['map']:.3f} R@1 {r['recall_at_1']:.3f} R@10 {r['recall_at_10']:.3f}"
        for k, r in retrieval.items()))
    return retrieval


def write_figures(out: Path, scores: Scores, print_report: bool, log: Callable[[str], None]) -> dict[str, Path]:
    """classification_report.txt, confusion_matrix.png, per_distortion.png and roc.png into ``out``."""
    from sklearn.metrics import classification_report

    from facelib.evaluation import plots

    out.mkdir(parents=True, exist_ok=True)
    ident = scores.report_result
    labels = ident.probe_identities  # the identities that have probes, not every gallery entry
    text = classification_report(ident.y_true, ident.y_pred, labels=labels, zero_division=0)
    with atomic_path(out / "classification_report.txt") as tmp:
        tmp.write_text(text)
    if print_report:
        log(f"\nclassification report ({ident.protocol}, {len(labels)} identities with probes):\n{text}")
    files = {"classification_report": out / "classification_report.txt"}
    plots.confusion_matrix_figure(ident.y_true, ident.y_pred, labels=labels, out=out / "confusion_matrix.png")
    files["confusion_matrix"] = out / "confusion_matrix.png"
    if ident.per_distortion:
        plots.per_distortion_figure(ident.per_distortion, out=out / "per_distortion.png")
        files["per_distortion"] = out / "per_distortion.png"
    if "verification" in scores.results:
        v = scores.results["verification"]
        plots.roc_figure(v.scores, v.same, out=out / "roc.png")
        files["roc"] = out / "roc.png"
    return files


def headline(cfg: EvalConfig, scores: Scores, reason: str) -> dict[str, Any]:
    """The first keys of ``metrics.json``: the primary protocol's figures, then every result."""
    main = scores.main
    figures = scores.results[main].to_dict()
    if main == "verification":
        top = {k: v for k, v in figures.items() if k not in ("protocol", "description", "embedding")}
    else:
        top = {k: figures[k] for k in ("top1", "top1_interval", "top5", "macro_f1", "n_probes", "n_gallery",
                                       "per_distortion")}
    base = scores.baselines.get(main)
    return {"protocol": main, "requested_protocol": cfg.protocol, "protocol_reason": reason,
            "gallery": cfg.gallery, **top, "report_protocol": scores.report_result.protocol,
            "threshold": None, "retrieval": {}, "pixel_baseline": base.to_dict() if base is not None else {},
            "protocols": {k: v.to_dict() for k, v in scores.results.items()},
            "pixel_baselines": {k: v.to_dict() for k, v in scores.baselines.items()}}


def run_record(cfg: EvalConfig, model: EmbeddingNet, spec: ModelSpec, ckpt: dict[str, Any], val: FaceFolder,
               train: FaceFolder | None) -> dict[str, Any]:
    """The last keys of ``metrics.json``: which checkpoint (with its fingerprint) on which data."""
    return {
        "checkpoint": str(cfg.checkpoint),
        "model": {"backbone": spec.backbone, "embedding_dim": spec.embedding_dim, "image_size": spec.image_size,
                  "face_crop": spec.face_crop, "restore": spec.restore,
                  "trained_epochs": ckpt.get("epoch"), "fingerprint": model_fingerprint(model.state_dict(), spec)},
        "data": val.report.to_dict(),
        "train_data": train.report.to_dict() if train is not None else None,
    }
