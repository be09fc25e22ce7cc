from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from facelib.cli import build_parser, main
from facelib.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]

CONTRACT = {
    "train": ["--data", "--epochs", "--image-size", "--batch-size", "--lr", "--backbone", "--pretrained",
              "--no-pretrained", "--weights", "--out", "--device", "--seed", "--workers", "--miner", "--p", "--k",
              "--margin", "--embedding-dim", "--amp", "--no-amp", "--compile", "--resume", "--val-data",
              "--patience", "--neck", "--loss", "--class-margin", "--class-scale", "--max-seconds"],
    "test": ["--data", "--train-data", "--checkpoint", "--protocol", "--out", "--gallery", "--target-far"],
    "embed": ["--checkpoint", "--data", "--out"],
    "enroll": ["--checkpoint", "--data", "--out", "--threshold", "--metrics", "--mode"],
    "identify": ["--checkpoint", "--gallery", "--threshold", "--top-k", "--json", "--align", "--detector", "PATH"],
    "align": ["--detector", "--size", "--no-face", "--upsample"],
    "export": ["--checkpoint", "--format", "--out"],
    "distort": ["--src", "--out", "--kinds", "--seed"],
    "synth": ["--out", "--identities", "--photos", "--image-size", "--seed"],
    "demo": ["--out"],
}


@pytest.mark.parametrize("command", sorted(CONTRACT))
def test_every_contract_flag_is_documented(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for flag in CONTRACT[command]:
        assert flag in text, f"{command} --help lacks {flag}"


def test_top_level_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for command in CONTRACT:
        assert command in text


def test_several_data_flags_make_several_sources():
    from facelib.cli import train_config_from_args

    c = train_config_from_args(build_parser().parse_args(["train", "--data", "a", "--data", "b"]))
    assert c.data == ["a", "b"] and c.data_folders == ["a", "b"]


TINY_TRAIN = ["--image-size", "32", "--no-pretrained", "--backbone", "resnet18", "--embedding-dim", "16",
              "--steps-per-epoch", "2", "--workers", "0", "--no-progress", "--epochs", "1", "--p", "4", "--k", "2"]


@pytest.mark.parametrize("flags, expect", [
    (["--loss", "triplet", "--neck", "bn", "--miner", "batch_hard"], ["neck bn", "miner batch_hard"]),
    (["--loss", "arcface", "--neck", "none", "--class-scale", "16"], ["arcface head", "margin 0.5, scale 16.0"]),
    (["--loss", "cosface", "--class-margin", "0.2"], ["cosface head", "margin 0.2, scale 30.0"]),
    (["--max-seconds", "1", "--epochs", "100"], ["time budget: 1 s", "time budget of 1 s spent"]),
    (["--augment", "none"], ["augmentation none: FaceCrop, Resize"]),
    (["--normalize-embeddings"], ["margin 0.", "on L2-normalised embeddings"]),
    (["--no-normalize-embeddings"], ["margin 0.", "on un-normalised embeddings / sqrt(dim)"]),
    (["--distance", "cosine", "--no-normalize-embeddings"], ["margin 0.", "on L2-normalised embeddings"]),
    (["--distance", "euclidean"], ["on L2-normalised embeddings"]),
    (["--augment", "mild"], ["augmentation mild: FaceCrop, RandomResizedCrop, RandomHorizontalFlip, ColorJitter"]),
    (["--augment", "strong"], ["augmentation strong: FaceCrop, RandomResizedCrop", "RandomGrayscale, RandomErasing"]),
    (["--face-crop", "1"], ["input: the whole frame, resized to 32 px"]),
    (["--frame-cache"], ["images decoded and framed once"]),
    (["--no-frame-cache"], ["frames: read from disk each time (frame_cache off)"]),
    (["--face-crop", "0.55"], ["input: central 55% of the side, resized to 32 px", "augmentation mild: FaceCrop"]),
    (["--restore", "median"], ["after a median filter", "augmentation mild: Restore, FaceCrop"]),
    (["--restore", "none"], ["input: central 55% of the side, resized"]),
    (["--flip-test"], ["resized to 32 px; embedding: the photo and its mirror image, averaged"]),
    (["--no-flip-test"], ["resized to 32 px\n"]),
])
def test_train_flag_values_run(synth_root, tmp_path, capsys, flags, expect):
    out = tmp_path / "m.pth"
    assert main(["train", "--data", str(synth_root / "train"), "--out", str(out), *TINY_TRAIN, *flags]) == 0
    text = capsys.readouterr().out
    for phrase in expect:
        assert phrase in text, phrase
    assert out.is_file()
    if "--flip-test" in flags or "--no-flip-test" in flags:
        assert torch.load(out, weights_only=True)["model_spec"]["flip_test"] == ("--flip-test" in flags)


@pytest.mark.parametrize("negatives", ["0", "1", "5"])
def test_negatives_flag(tmp_path, capsys, negatives):
    from tests.conftest import make_folder, write_image

    root = make_folder(tmp_path / "d", identities=4, photos=3)
    for name in ("solo", "duo"):
        write_image(root / name / f"{name}_0001.jpg", seed=len(name))
    assert main(["train", "--data", str(root), "--out", str(tmp_path / "m.pth"), *TINY_TRAIN,
                 "--negatives", negatives]) == 0
    text = capsys.readouterr().out
    said = {"0": None, "1": "+ 1 extra negatives per batch", "5": "+ 2 extra negatives per batch"}[negatives]
    assert ("extra negatives" in text) == (said is not None)
    if said:
        assert said in text and "(2 such identities" in text
    assert ("negatives=5 clamped" in text) == (negatives == "5")


@pytest.mark.parametrize("min_photos", ["1", "2"])
def test_min_photos_flag(tmp_path, capsys, min_photos):
    from tests.conftest import make_folder, write_image

    root = make_folder(tmp_path / "d", identities=4, photos=3)
    write_image(root / "solo" / "solo_0001.jpg", seed=1)
    write_image(root / "solo" / "distortion" / "solo_0001_blurred.jpg", seed=2)
    assert main(["train", "--data", str(root), "--out", str(tmp_path / "m.pth"), *TINY_TRAIN,
                 "--min-photos", min_photos]) == 0
    said = "1 identities with fewer than 2 photos are not drawn" in capsys.readouterr().out
    assert said == (min_photos == "2")


def test_train_default_recipe_is_the_library_default():
    from facelib.cli import train_config_from_args

    cfg = train_config_from_args(build_parser().parse_args(["train"]))
    assert cfg == TrainConfig()
    orig = train_config_from_args(build_parser().parse_args(["train", "--recipe", "original"]))
    assert orig == TrainConfig.original() and orig != TrainConfig()


def _err(capsys) -> str:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    return captured.err


def test_missing_data_folder_is_one_clear_line(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "nope"), "--no-pretrained"]) == 2
    err = _err(capsys)
    assert err.startswith("error: data folder not found") and err.count("\n") == 1


def test_pretrained_offline_says_the_way_out(synth_root, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    code = main(["train", "--data", str(synth_root / "train"), "--backbone", "resnet18", "--out",
                 str(tmp_path / "m.pth"), "--no-progress"])
    assert code == 2
    err = _err(capsys)
    assert "weights=FILE" in err and "pretrained=False" in err  # the fields, as a library user sets them
    assert "--weights" in err and "--pretrained/--no-pretrained" in err  # and the flags, added by the CLI


def test_bad_checkpoint_is_clear(synth_root, tmp_path, capsys):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"\x00not a checkpoint")
    assert main(["test", "--data", str(synth_root / "val"), "--checkpoint", str(junk), "--out", str(tmp_path)]) == 2
    assert "not a readable torch checkpoint" in _err(capsys)
    assert main(["test", "--data", str(synth_root / "val"), "--checkpoint", str(tmp_path / "none.pth")]) == 2
    assert "checkpoint not found" in _err(capsys)


def test_bad_setting_is_clear(synth_root, capsys):
    assert main(["train", "--data", str(synth_root / "train"), "--epochs", "0", "--no-pretrained"]) == 2
    assert "epochs must be >= 1" in _err(capsys)


def test_test_writes_metrics_and_confusion_matrix(synth_root, tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "report"
    code = main(["test", "--data", str(synth_root / "val"), "--train-data", str(synth_root / "train"),
                 "--checkpoint", str(tiny_checkpoint), "--out", str(out), "--workers", "0"])
    assert code == 0
    text = capsys.readouterr().out
    assert "disjoint" in text and "cross-photo" in text and "gallery" in text and "precision" in text
    m = json.loads((out / "metrics.json").read_text())
    assert m["protocol"] == "cross-photo"
    for key in ("top1", "macro_f1", "n_probes", "n_gallery", "protocol", "top5", "per_distortion"):
        assert key in m
    assert 0 <= m["top1"] <= 1 and m["n_probes"] > 0
    assert set(m["protocols"]) >= {"cross-photo", "gallery", "verification"}
    assert 0 <= m["pixel_baseline"]["top1"] <= 1
    assert (out / "confusion_matrix.png").stat().st_size > 1000


def test_closed_protocol_when_identities_overlap(synth_root, tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "closed"
    code = main(["test", "--data", str(synth_root / "train"), "--train-data", str(synth_root / "train"),
                 "--checkpoint", str(tiny_checkpoint), "--out", str(out), "--workers", "0", "--quiet-report",
                 "--no-baseline"])
    assert code == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["protocol"] == "closed" and m["n_gallery"] == 12


def test_embed_npz_contract(synth_root, tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "e.npz"
    assert main(["embed", "--checkpoint", str(tiny_checkpoint), "--data", str(synth_root / "val"), "--out", str(out),
                 "--workers", "0"]) == 0
    z = np.load(out, allow_pickle=False)
    n = len(z["paths"])
    assert z["embeddings"].shape == (n, 32) and z["embeddings"].dtype == np.float32
    assert np.allclose(np.linalg.norm(z["embeddings"], axis=1), 1, atol=1e-5)
    assert not any(Path(p).is_absolute() for p in z["paths"])
    assert (synth_root / "val" / z["paths"][0]).is_file()
    assert set(z["distortions"]) == {"", "blurred", "foggy", "lowlight", "noisy", "rainy", "resized", "sunny"}
    assert len(z["identities"]) == n


def test_synth_and_distort_commands(tmp_path, capsys):
    assert main(["synth", "--out", str(tmp_path / "s"), "--identities", "6", "--photos", "2", "--image-size",
                 "32"]) == 0
    assert (tmp_path / "s" / "train").is_dir() and (tmp_path / "s" / "val").is_dir()
    src = tmp_path / "clean"
    for f in (tmp_path / "s" / "train").glob("*/*.jpg"):
        dst = src / f.parent.name / f.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(f.read_bytes())
    assert main(["distort", "--src", str(src), "--out", str(tmp_path / "d"), "--kinds", "foggy", "noisy"]) == 0
    made = sorted(p.name for p in (tmp_path / "d").glob("*/distortion/*.jpg"))
    assert made and all(n.endswith(("_foggy.jpg", "_noisy.jpg")) for n in made)
    assert len(made) == 2 * len(list(src.glob("*/*.jpg")))


@pytest.mark.slow
def test_root_scripts_like_the_originals(synth_root, tmp_path):
    """`python train.py` then `python test.py`, run in a folder holding ./train and ./val."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "train").symlink_to(synth_root / "train")
    (work / "val").symlink_to(synth_root / "val")
    env_run = dict(cwd=work, capture_output=True, text=True, timeout=600)
    r = subprocess.run([sys.executable, str(ROOT / "train.py"), "--epochs", "2", "--image-size", "32",
                        "--no-pretrained", "--backbone", "resnet18", "--steps-per-epoch", "2", "--workers", "0",
                        "--no-progress"], **env_run)
    assert r.returncode == 0, r.stderr
    assert "epoch 1/2" in r.stdout and "epoch 2/2" in r.stdout and (work / "tb_model.pth").is_file()
    r = subprocess.run([sys.executable, str(ROOT / "test.py"), "--workers", "0"], **env_run)
    assert r.returncode == 0, r.stderr
    assert "precision" in r.stdout and (work / "confusion_matrix.png").is_file()
    assert json.loads((work / "metrics.json").read_text())["protocol"] == "cross-photo"


def test_single_photo_identities_fall_back_to_gallery(tiny_checkpoint, tmp_path, capsys):
    from tests.conftest import make_folder

    val = make_folder(tmp_path / "val", identities=3, photos=1, distortions=("foggy", "noisy"))
    out = tmp_path / "r"
    assert main(["test", "--data", str(val), "--train-data", str(tmp_path / "none"), "--checkpoint",
                 str(tiny_checkpoint), "--out", str(out), "--workers", "0", "--quiet-report"]) == 0
    text = capsys.readouterr().out
    assert "cross-photo skipped" in text
    m = json.loads((out / "metrics.json").read_text())
    assert m["protocol"] == "gallery" and m["n_probes"] == 6


def test_folder_with_nothing_to_score_is_clear(tiny_checkpoint, tmp_path, capsys):
    from tests.conftest import make_folder

    val = make_folder(tmp_path / "val", identities=3, photos=1, distortions=())
    assert main(["test", "--data", str(val), "--train-data", str(tmp_path / "none"), "--checkpoint",
                 str(tiny_checkpoint), "--out", str(tmp_path / "r"), "--workers", "0"]) == 2
    assert "no identification protocol can be scored" in _err(capsys)


def test_cuda_asked_without_gpu_is_clear(synth_root, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same answer on a machine with a GPU
    assert main(["train", "--data", str(synth_root / "train"), "--device", "cuda", "--no-pretrained"]) == 2
    assert "no CUDA GPU is available" in _err(capsys)


@pytest.mark.parametrize("synth", ["--synth-distortions", "--no-synth-distortions"])
def test_several_sources_and_made_distortions(synth_root, tmp_path, capsys, synth):
    plain = tmp_path / "plain"  # clean photos only, as extra_faces/lfw
    for img in (synth_root / "train").glob("*/*.jpg"):
        (plain / img.parent.name).mkdir(parents=True, exist_ok=True)
        (plain / img.parent.name / img.name).write_bytes(img.read_bytes())
    out = tmp_path / "m.pth"
    assert main(["train", "--data", str(synth_root / "train"), "--data", str(plain), "--out", str(out), *TINY_TRAIN,
                 synth]) == 0
    text = capsys.readouterr().out
    assert "2 sources (people in different folders are different people)" in text
    made = "distortions are made on the fly" in text
    assert made == (synth == "--synth-distortions")
    ckpt = torch.load(out, weights_only=True)
    n = len(list((synth_root / "train").iterdir()))
    assert len(ckpt["identities"]) == 2 * n and any(i.startswith("plain/") for i in ckpt["identities"])


def test_init_fine_tunes_a_checkpoint(synth_root, tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "ft.pth"
    flags = ["--image-size", "32", "--no-pretrained", "--backbone", "resnet18", "--steps-per-epoch", "1",
             "--workers", "0", "--no-progress", "--epochs", "1", "--p", "4", "--k", "2", "--lr", "1e-12"]
    assert main(["train", "--data", str(synth_root / "train"), "--out", str(out), "--embedding-dim", "32",
                 "--init", str(tiny_checkpoint), *flags]) == 0
    text = capsys.readouterr().out
    assert f"weights from facelib checkpoint {tiny_checkpoint} (fine-tuning)" in text
    before, after = (torch.load(p, weights_only=True)["model"] for p in (tiny_checkpoint, out))
    w = "backbone.conv1.weight"
    assert torch.allclose(before[w], after[w], atol=1e-6)  # started from the checkpoint (lr ~0: stayed there)
    # another architecture: one error line, exit 2
    assert main(["train", "--data", str(synth_root / "train"), "--out", str(tmp_path / "x.pth"),
                 "--embedding-dim", "16", "--init", str(tiny_checkpoint), *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "embedding_dim 32" in err[0] and "holds another embedder" in err[0]
    assert main(["train", "--data", str(synth_root / "train"), "--init", str(tiny_checkpoint), "--weights", "w.pth",
                 *flags]) == 2
    assert "not both" in capsys.readouterr().err


def test_teacher_flags_run(synth_root, tiny_checkpoint, tmp_path, capsys):
    """--teacher FILE (a facelib checkpoint), --teacher-cache, --distill-weight, --distill similarity, --loss none
    (the projection form with the triplet loss: tests/training/test_distill.py); the second run, without --loss
    (none is the default with a teacher), takes every teacher row from the cache."""
    out, cache = tmp_path / "m.pth", tmp_path / "cache"
    args = ["train", "--data", str(synth_root / "train"), "--out", str(out), *TINY_TRAIN,
            "--teacher", str(tiny_checkpoint), "--teacher-cache", str(cache), "--loss", "none",
            "--distill", "similarity", "--distill-weight", "2"]
    assert main(args) == 0
    text = capsys.readouterr().out
    for phrase in ("loss none; + 2 x distillation from teacher", "(similarity)", "distill ", " 0 from the cache"):
        assert phrase in text, phrase
    assert (cache / "teachers").is_dir() and out.is_file()
    # again without --loss: a teacher makes none the default loss (TrainConfig.metric_loss)
    assert main([a for a in args if a not in ("--loss", "none")]) == 0
    text = capsys.readouterr().out
    assert " 0 computed" in text and "loss none (the default with a teacher; loss triplet adds" in text


def test_teacher_errors_are_one_line(synth_root, tmp_path, capsys):
    base = ["train", "--data", str(synth_root / "train"), "--out", str(tmp_path / "m.pth"), *TINY_TRAIN]
    assert main(base + ["--loss", "none"]) == 2
    assert "give a teacher" in capsys.readouterr().err
    assert main(base + ["--teacher", "nobody"]) == 2
    err = capsys.readouterr().err
    assert "unknown teacher 'nobody'" in err and "--teacher" in err and "Traceback" not in err
    assert main(base + ["--teacher", str(tmp_path / "gone.onnx")]) == 2
    assert "teacher file not found" in capsys.readouterr().err
