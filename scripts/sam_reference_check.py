#!/usr/bin/env python3
"""End-to-end check of our Swift SAM port against the official `segment_anything` package.

Run by hand (never in CI; it needs the reference Python, a release build and minutes of CPU):

    swift build -c release
    ~/.cache/wsss-ref/bin/python scripts/sam_reference_check.py --config vit_b
    ~/.cache/wsss-ref/bin/python scripts/sam_reference_check.py --config vit_b --official-only

No official checkpoint can be downloaded here, so the check runs on full-size random weights:

1. The official model `sam_model_registry[config]()` is built after `torch.manual_seed(seed)`.
   Its own initialisation leaves `image_encoder.pos_embed` and every `rel_pos_h` / `rel_pos_w`
   at zero, which would leave the absolute and relative position paths untested, so those are
   then filled with N(0, 0.02). The state dict is saved as `<workdir>/sam_<config>_random.pth`.
2. A test image (640x480 RGB uint8: smooth gradients, a few filled shapes, noise) is drawn from
   the seed and saved as `<workdir>/image.png`; the prompts are the shapes' boxes and centres.
3. The official `SamPredictor` gives the image embedding [1, 256, 64, 64] and, for each prompt
   case below, masks (bool), iou_predictions and low_res_logits (written to official.h5).
4. Our `wsss sam embed` / `wsss sam predict` run on the same checkpoint, image and prompts, and
   `wsss sam convert` makes the HDF5 copy whose embedding must equal the .pth one.
5. Both are compared; one JSON object goes to stdout; the exit status is 0 on pass, 1 on fail.

Prompt cases (they follow `SamPredictor.predict`, one call per official prompt):
    boxes      two boxes, each alone, multimask off            -> N = 2
    box_point  one box with one positive point, multimask off  -> N = 1
    points     a positive and a negative point, multimask on   -> N = 1 (one prompt)

Pass criteria: embedding max|ours - official| / max|official| <= 1e-3; the same for every case's
low_res_logits; iou_predictions max abs diff <= 1e-3; IoU of every binary mask with the
official one >= 0.99 (two empty masks count as IoU 1); the embedding from the converted .h5
checkpoint within 1e-6 relative of the .pth one (the same float32 weights, so it should be exact).

Options: --config vit_b|vit_l|vit_h, --seed, --workdir (default: a temporary folder, removed at
the end unless --keep; a folder given with --workdir is never removed), --wsss (our binary),
--threads (torch.set_num_threads and `wsss ... --threads`), --official-only (stop after step 3
and print the official timings: a check of this script's reference half on its own).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np
import torch
from PIL import Image
from segment_anything import SamPredictor, sam_model_registry

IMAGE_WIDTH, IMAGE_HEIGHT = 640, 480
POSITION_STD = 0.02
TOLERANCE = {"embedding_rel": 1e-3, "logits_rel": 1e-3, "iou_abs": 1e-3, "mask_iou_min": 0.99,
             "h5_embedding_rel": 1e-6}


def parse_arguments():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", choices=["vit_b", "vit_l", "vit_h"], default="vit_b",
                   help="official SAM configuration (default: vit_b)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights, image and prompts (default: 0)")
    p.add_argument("--workdir", help="folder for the checkpoint, image and outputs (default: a temporary folder)")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (a --workdir is always kept)")
    p.add_argument("--wsss", default=".build/release/wsss", help="our binary (default: .build/release/wsss)")
    p.add_argument("--threads", type=int, help="threads for torch and for wsss (default: each one's own default)")
    p.add_argument("--official-only", action="store_true",
                   help="run only the official half (steps 1-3) and print its timings")
    return p.parse_args()


# ---------------------------------------------------------------- 1. weights

def build_official(config, seed):
    """The official SAM with its own seeded initialisation, position tables made non-zero."""
    torch.manual_seed(seed)
    sam = sam_model_registry[config]()
    filled = []
    with torch.no_grad():
        for name, parameter in sam.named_parameters():
            if name == "image_encoder.pos_embed" or name.endswith(("rel_pos_h", "rel_pos_w")):
                parameter.normal_(0.0, POSITION_STD)
                filled.append(name)
    return sam.eval(), filled


# ---------------------------------------------------------------- 2. image and prompts

def make_image(seed):
    """A 640x480 RGB uint8 image and the boxes / centres of the shapes drawn on it."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:IMAGE_HEIGHT, 0:IMAGE_WIDTH].astype(np.float64)
    u, v = x / IMAGE_WIDTH, y / IMAGE_HEIGHT
    image = np.stack([60 + 120 * u, 50 + 140 * v, 90 + 60 * np.sin(3 * u + 2 * v)], axis=-1)

    shapes = []
    # An ellipse in the left half, a rectangle in the right half, a smaller disc at the bottom:
    # separate, so each box holds one object and the background point lies outside all of them.
    for kind, (cx_range, cy_range) in [("ellipse", ((0.15, 0.35), (0.25, 0.45))),
                                       ("rectangle", ((0.60, 0.80), (0.25, 0.45))),
                                       ("disc", ((0.40, 0.60), (0.70, 0.80)))]:
        cx = rng.uniform(*cx_range) * IMAGE_WIDTH
        cy = rng.uniform(*cy_range) * IMAGE_HEIGHT
        if kind == "disc":
            rx = ry = rng.uniform(0.06, 0.08) * IMAGE_HEIGHT
        else:
            rx = rng.uniform(0.08, 0.12) * IMAGE_WIDTH
            ry = rng.uniform(0.10, 0.15) * IMAGE_HEIGHT
        if kind == "rectangle":
            inside = (np.abs(x - cx) <= rx) & (np.abs(y - cy) <= ry)
        else:
            inside = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1
        image[inside] = rng.uniform(0, 255, size=3)
        ys, xs = np.nonzero(inside)
        shapes.append({"kind": kind, "box": [int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())],
                       "centre": [int(round(cx)), int(round(cy))]})

    image += rng.normal(0.0, 6.0, size=image.shape)
    image = np.clip(np.round(image), 0, 255).astype(np.uint8)

    ellipse, rectangle, disc = shapes
    background = [int(0.5 * IMAGE_WIDTH), int(0.1 * IMAGE_HEIGHT)]
    cases = [
        {"name": "boxes", "boxes": [ellipse["box"], rectangle["box"]], "points": [], "multimask": False},
        {"name": "box_point", "boxes": [rectangle["box"]], "points": [rectangle["centre"] + [1]],
         "multimask": False},
        {"name": "points", "boxes": [], "points": [disc["centre"] + [1], background + [0]], "multimask": True},
    ]
    return image, shapes, cases


# ---------------------------------------------------------------- 3. official outputs

def official_case(predictor, case):
    """masks [N, M, H, W] bool, iou_predictions [N, M], low_res_logits [N, M, 256, 256] for `case`.

    One `SamPredictor.predict` call per box (each with all the points), or one call with the
    points alone, as our CLI's N is defined.
    """
    coords = labels = None
    if case["points"]:
        coords = np.array([p[:2] for p in case["points"]], dtype=np.float64)
        labels = np.array([p[2] for p in case["points"]], dtype=np.int64)
    outputs = []
    for box in case["boxes"] or [None]:
        outputs.append(predictor.predict(point_coords=coords, point_labels=labels,
                                         box=None if box is None else np.array(box, dtype=np.float64),
                                         multimask_output=case["multimask"]))
    masks, iou, logits = (np.stack([o[k] for o in outputs]) for k in range(3))
    return {"masks": masks, "iou_predictions": iou, "low_res_logits": logits}


def run_official(sam, image, cases, workdir):
    """The official embedding [256, 64, 64], each case's outputs, and their wall times in seconds."""
    predictor = SamPredictor(sam)
    timings = {}
    start = time.perf_counter()
    predictor.set_image(image, image_format="RGB")
    embedding = predictor.get_image_embedding().detach().cpu().numpy()
    timings["set_image"] = time.perf_counter() - start
    results = {}
    for case in cases:
        start = time.perf_counter()
        results[case["name"]] = official_case(predictor, case)
        timings["predict_" + case["name"]] = time.perf_counter() - start
    with h5py.File(os.path.join(workdir, "official.h5"), "w") as f:
        f["embedding"] = embedding[0]
        for name, outputs in results.items():
            for key, value in outputs.items():
                f[f"{name}/{key}"] = value.astype(np.uint8) if value.dtype == bool else value
    return embedding[0], results, timings


# ---------------------------------------------------------------- 4. our CLI

class OurToolError(RuntimeError):
    pass


def run_ours(wsss, arguments, threads):
    """Runs `wsss <arguments> [--threads n]`, returns its wall time; a failure raises with its stderr."""
    command = [wsss] + arguments + ([] if threads is None else ["--threads", str(threads)])
    start = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True)
    except OSError as error:
        raise OurToolError(f"cannot run {wsss}: {error}. Build it with `swift build -c release` or pass --wsss.")
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        raise OurToolError(
            f"`{' '.join(command)}` exited with status {done.returncode}. If `wsss sam` is not implemented "
            f"in this build yet (see `git log --oneline | grep 'wsss sam'`), that is expected; rebuild with "
            f"`swift build -c release` once it lands.\nstderr (last lines):\n{tail}")
    return seconds


def read_h5(path, keys):
    """The named datasets of one of our output files; a missing one raises naming what is there."""
    with h5py.File(path, "r") as f:
        missing = [k for k in keys if k not in f]
        if missing:
            raise OurToolError(f"{path} has no dataset {', '.join(missing)} (it holds {', '.join(f.keys())})")
        return {k: f[k][()] for k in keys}


def case_arguments(case):
    """`--box x0,y0,x1,y1 ... --point x,y,label ... [--multimask]` for `wsss sam predict`."""
    arguments = []
    for box in case["boxes"]:
        arguments += ["--box", ",".join(str(v) for v in box)]
    for point in case["points"]:
        arguments += ["--point", ",".join(str(v) for v in point)]
    if case["multimask"]:
        arguments.append("--multimask")
    return arguments


# ---------------------------------------------------------------- 5. comparison

def relative_error(ours, official):
    """max|a - b| and max|a - b| / max|b|."""
    difference = float(np.max(np.abs(ours.astype(np.float64) - official.astype(np.float64))))
    scale = float(np.max(np.abs(official)))
    return difference, difference / scale if scale > 0 else (0.0 if difference == 0 else float("inf"))


def mask_ious(ours, official):
    """IoU of each pair of binary masks over the last two axes; two empty masks give 1."""
    a = ours.reshape(-1, ours.shape[-2] * ours.shape[-1]) != 0
    b = official.reshape(-1, official.shape[-2] * official.shape[-1])
    intersection = np.logical_and(a, b).sum(axis=1)
    union = np.logical_or(a, b).sum(axis=1)
    return np.where(union > 0, intersection / np.maximum(union, 1), 1.0)


def compare_case(ours, official):
    """One prompt case's errors (see the module docstring) and whether they are within tolerance."""
    shapes = {k: [list(ours[k].shape), list(official[k].shape)] for k in official}
    if any(list(ours[k].shape) != list(official[k].shape) for k in official):
        return {"shapes_ours_official": shapes, "pass": False, "error": "shapes differ"}
    logits_abs, logits_rel = relative_error(ours["low_res_logits"], official["low_res_logits"])
    iou_abs = float(np.max(np.abs(ours["iou_predictions"].astype(np.float64) - official["iou_predictions"])))
    ious = mask_ious(ours["masks"], official["masks"])
    result = {
        "shape": list(official["masks"].shape),
        "logits_max_abs": logits_abs,
        "logits_rel": logits_rel,
        "iou_predictions_max_abs": iou_abs,
        "mask_iou_min": float(ious.min()),
        "mask_pixels_differing": int(np.sum((ours["masks"] != 0) != official["masks"])),
        # With random weights a mask can be all or nothing; the fraction shows how telling the IoU is.
        "official_mask_foreground_fraction": [round(float(m.mean()), 4)
                                              for m in official["masks"].reshape(-1, *official["masks"].shape[-2:])],
    }
    result["pass"] = bool(logits_rel <= TOLERANCE["logits_rel"] and iou_abs <= TOLERANCE["iou_abs"]
                          and result["mask_iou_min"] >= TOLERANCE["mask_iou_min"])
    return result


def run_check(args, workdir, report):
    """Steps 1-5; fills `report` and returns whether every comparison passed."""
    start = time.perf_counter()
    sam, filled = build_official(args.config, args.seed)
    build_seconds = time.perf_counter() - start
    checkpoint = os.path.join(workdir, f"sam_{args.config}_random.pth")
    torch.save(sam.state_dict(), checkpoint)
    report["weights"] = {
        "checkpoint": checkpoint,
        "init": f"official init after torch.manual_seed({args.seed}); image_encoder.pos_embed and every "
                f"rel_pos_h/rel_pos_w then filled with N(0, {POSITION_STD}) (the official init leaves them zero)",
        "filled_tensors": len(filled),
    }

    image, shapes, cases = make_image(args.seed)
    image_path = os.path.join(workdir, "image.png")
    Image.fromarray(image, mode="RGB").save(image_path)
    # Read back what our tool will read, so both sides see the same pixels.
    image = np.array(Image.open(image_path).convert("RGB"))
    report["image"] = {"path": image_path, "width": IMAGE_WIDTH, "height": IMAGE_HEIGHT, "shapes": shapes}
    report["cases"] = cases

    official_embedding, official, official_timings = run_official(sam, image, cases, workdir)
    report["timings_s"] = {
        "note": "official: in-process calls on a built model (set_image = the encoder); ours: whole `wsss` "
                "runs, each loading the checkpoint and image and encoding it before any decoding",
        "official": {"build": build_seconds, **official_timings},
    }
    if args.official_only:
        report["official"] = {
            "embedding_shape": list(official_embedding.shape),
            "embedding_abs_max": float(np.abs(official_embedding).max()),
            "cases": {name: {k: list(v.shape) for k, v in outputs.items()} for name, outputs in official.items()},
        }
        return True

    ours_timings = report["timings_s"]["ours"] = {}
    comparison = report["comparison"] = {}
    embedding_path = os.path.join(workdir, "ours_embedding.h5")
    ours_timings["embed_pth"] = run_ours(args.wsss, ["sam", "embed", "--checkpoint", checkpoint,
                                                     "--image", image_path, "--out", embedding_path], args.threads)
    ours_embedding = read_h5(embedding_path, ["embedding"])["embedding"]
    if list(ours_embedding.shape) != list(official_embedding.shape):
        raise OurToolError(f"embedding shape {list(ours_embedding.shape)}, "
                           f"expected {list(official_embedding.shape)}")
    embedding_abs, embedding_rel = relative_error(ours_embedding, official_embedding)
    comparison["embedding"] = {"max_abs": embedding_abs, "rel": embedding_rel,
                               "pass": embedding_rel <= TOLERANCE["embedding_rel"]}

    converted = os.path.join(workdir, f"sam_{args.config}_random.h5")
    ours_timings["convert"] = run_ours(args.wsss, ["sam", "convert", checkpoint, converted], None)
    h5_embedding_path = os.path.join(workdir, "ours_embedding_from_h5.h5")
    ours_timings["embed_h5"] = run_ours(args.wsss, ["sam", "embed", "--checkpoint", converted,
                                                    "--image", image_path, "--out", h5_embedding_path], args.threads)
    h5_embedding = read_h5(h5_embedding_path, ["embedding"])["embedding"]
    h5_abs, h5_rel = relative_error(h5_embedding, ours_embedding)
    comparison["h5_checkpoint_embedding"] = {"max_abs_vs_pth": h5_abs, "rel_vs_pth": h5_rel,
                                             "identical": bool(np.array_equal(h5_embedding, ours_embedding)),
                                             "pass": h5_rel <= TOLERANCE["h5_embedding_rel"]}

    for case in cases:
        out = os.path.join(workdir, f"ours_{case['name']}.h5")
        ours_timings["predict_" + case["name"]] = run_ours(
            args.wsss, ["sam", "predict", "--checkpoint", checkpoint, "--image", image_path]
            + case_arguments(case) + ["--out", out], args.threads)
        ours = read_h5(out, ["masks", "iou_predictions", "low_res_logits"])
        comparison[case["name"]] = compare_case(ours, official[case["name"]])

    return all(entry["pass"] for entry in comparison.values())


def main():
    args = parse_arguments()
    if args.threads is not None:
        if args.threads < 1:
            sys.exit("--threads must be at least 1")
        torch.set_num_threads(args.threads)
    created = args.workdir is None
    workdir = tempfile.mkdtemp(prefix="sam-check-") if created else args.workdir
    os.makedirs(workdir, exist_ok=True)
    keep = args.keep or not created
    report = {"config": args.config, "seed": args.seed, "threads": args.threads or torch.get_num_threads(),
              "torch": torch.__version__, "workdir": workdir if keep else None,
              "tolerance": TOLERANCE}
    try:
        passed = run_check(args, workdir, report)
        if not args.official_only:
            report["pass"] = passed
    except OurToolError as error:
        passed = False
        report["pass"] = False
        report["error"] = str(error)
        print(f"sam_reference_check: {error}", file=sys.stderr)
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(report, indent=2))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
