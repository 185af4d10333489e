#!/usr/bin/env python3
"""PyTorch's time for the step `wsss bench model` times, on this machine: one JSON object per line,
with the same fields (median_s, images_per_s, peak_rss_mb), so the two can be compared as ratios
measured in one session.

Same network as ours (scripts/make_model_fixtures.py's Net: DeepLab-v2, caffe blocks, output
stride 8, ASPP 6/12/18/24, 21 classes), random input and labels, SGD with DeepLab's groups.
Run: ~/.cache/wsss-ref/bin/python scripts/bench_reference.py --mode train --depth 50 --narrow 8 \
     --train-bn --size 128 --batch 10      (the demo's segmenter)
     ~/.cache/wsss-ref/bin/python scripts/bench_reference.py --mode train          (R101, 321, b1)
     ~/.cache/wsss-ref/bin/python scripts/bench_reference.py --sam vit_b [--generator [--image WxH] [--keep all|third]]
       (--sam vit_t / mobile_sam: MobileSAM; vit_b_hq, vit_l_hq, vit_h_hq, vit_tiny_hq: SAM-HQ and light HQ-SAM)
         (the official segment_anything with random weights, as `wsss bench sam --config vit_b`:
          image encoder at 1024x1024, then the mask decoder in masks/s for batches of 64 point
          prompts, then the automatic mask generator at its defaults in s/image)
     ~/.cache/wsss-ref/bin/python scripts/bench_reference.py --crf [--images 4]
         (pydensecrf2's dense CRF as deeplab-pytorch's crf.py sets it up, as `wsss bench crf`:
          500x375 images of flat rectangles with noise, 21-class softmax of smooth random logits,
          10 iterations; per image on one thread, pydensecrf being single-threaded)
     ~/.cache/wsss-ref/bin/python scripts/bench_reference.py --detect swin_t [--repeats 3]
         (the official Grounding DINO (rf-groundingdino) built from GroundingDINO_SwinT_OGC.py /
          GroundingDINO_SwinB_cfg.py with random weights (scripts/fixtures/gdino_official.py; nothing
          downloaded): model(image, captions=[caption]) in eval mode under no_grad, on a 1333x800
          picture that the official transform (RandomResize([800], max_size=1333), ToTensor,
          Normalize) leaves at [1, 3, 800, 1333], with the 20 VOC class names joined by " . " as the
          caption (49 tokens); one warm-up, then the median of --repeats; ~3 GB of RAM)
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_model_fixtures import Net  # noqa: E402

BLOCKS = {50: [3, 4, 6, 3], 101: [3, 4, 23, 3]}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mode", choices=["train", "infer"], default="train")
    p.add_argument("--depth", type=int, choices=sorted(BLOCKS), default=101)
    p.add_argument("--narrow", type=int, default=1)
    p.add_argument("--train-bn", action="store_true")
    p.add_argument("--msc", action="store_true", help="multi-scale inputs 1, 0.75, 0.5 + max fusion, loss on all four (deeplab-pytorch's MSC)")
    p.add_argument("--size", type=int, default=321)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--sam", choices=["vit_b", "vit_l", "vit_h", "vit_t", "mobile_sam", "vit_b_hq", "vit_l_hq", "vit_h_hq",
                                     "vit_tiny_hq"],
                   help="time the official SAM (vit_t / mobile_sam: MobileSAM's mobile_sam package; *_hq: SAM-HQ's "
                        "segment_anything_hq, vit_tiny_hq its light HQ-SAM) instead of DeepLab-v2")
    p.add_argument("--generator", action="store_true", help="with --sam: also time the automatic mask generator")
    p.add_argument("--image", default="1024x768", help="with --generator: image WxH (VOC's is about 500x375)")
    p.add_argument("--keep", choices=["defaults", "all", "third"], default="defaults",
                   help="with --generator: official thresholds, 0 for pred_iou_thresh and stability_score_thresh, or "
                        "stability 0 and the pred_iou_thresh a third of the candidates pass (as `wsss bench sam --keep third`)")
    p.add_argument("--skip-encoder", action="store_true", help="with --sam: leave out the encoder line")
    p.add_argument("--bf16", action="store_true",
                   help="run under torch.autocast('cpu', dtype=torch.bfloat16): with --sam as `wsss bench sam --precision "
                        "bf16`, else the DeepLab step as `wsss bench model --precision bf16`")
    p.add_argument("--skip-decoder", action="store_true", help="with --sam: leave out the decoder line")
    p.add_argument("--crf", action="store_true", help="time pydensecrf's dense CRF instead of DeepLab-v2 (as `wsss bench crf`)")
    p.add_argument("--images", type=int, default=4, help="with --crf: distinct images timed")
    p.add_argument("--detect", choices=["swin_t", "swin_b"],
                   help="time the official Grounding DINO forward instead of DeepLab-v2 (800x1333, VOC caption)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    if a.detect:
        return bench_detect(a)
    if a.crf:
        return bench_crf(a)
    if a.sam:
        return bench_sam(a)
    torch.manual_seed(0)
    n = a.narrow
    net = Net(BLOCKS[a.depth], "caffe", 64 // n, [64 // n, 128 // n, 256 // n, 512 // n], [1, 2, 1, 1], [1, 1, 2, 4],
              True, "aspp", 21)
    aspp = [q for k, q in net.named_parameters() if k.startswith("aspp")]
    if a.train_bn:
        net.train()
    else:
        net.eval()
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.requires_grad_(False)
                m.bias.requires_grad_(False)
    backbone = [q for k, q in net.named_parameters() if not k.startswith("aspp") and q.requires_grad]
    sgd = torch.optim.SGD([
        {"params": backbone},
        {"params": [q for q in aspp if q.dim() > 1], "lr": 2.5e-3},
        {"params": [q for q in aspp if q.dim() == 1], "lr": 5e-3, "weight_decay": 0},
    ], lr=2.5e-4, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(a.batch, 3, a.size, a.size)
    labels = torch.randint(0, 21, (a.batch, a.size, a.size))

    def forward_maps():
        full = net(x)
        if not a.msc:
            return [full]
        # deeplab-pytorch's MSC: 0.75 and 0.5 inputs, each upsampled to the full logits and max-fused.
        scaled = [net(F.interpolate(x, scale_factor=s, mode="bilinear", align_corners=False)) for s in (0.75, 0.5)]
        size = full.shape[2:]
        fused = torch.stack([full] + [F.interpolate(m, size=size, mode="bilinear", align_corners=False) for m in scaled]).max(0)[0]
        return [full] + scaled + [fused]

    import contextlib
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if a.bf16 else contextlib.nullcontext

    def step():
        if a.mode == "infer":
            with torch.no_grad(), autocast():
                forward_maps()[-1]
            return
        sgd.zero_grad()
        with autocast():
            maps = forward_maps()
        loss = 0
        for logits in maps:
            target = F.interpolate(labels[:, None].float(), size=logits.shape[2:], mode="nearest")[:, 0].long()
            loss = loss + F.cross_entropy(logits.float(), target, ignore_index=255)
        loss.backward()
        sgd.step()

    step()  # warm-up
    times = []
    for _ in range(a.repeats):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    median = statistics.median(times)
    name = f"torch_deeplabv2-r{a.depth}_{a.mode}" + ("_msc" if a.msc else "") + f"_{a.size}_b{a.batch}" + (f"_w{n}" if n > 1 else "") + ("_bn" if a.train_bn else "")
    print(json.dumps({
        "name": name, "median_s": median, "min_s": min(times), "images_per_s": round(a.batch / median, 1),
        "precision": "bf16" if a.bf16 else "fp32",
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "threads": torch.get_num_threads(), "torch": torch.__version__,
    }))


def bench_sam(a):
    """The official SAM, random weights (no checkpoint can be downloaded here), 2 phases."""
    import numpy as np
    if a.sam in ("vit_t", "mobile_sam"):
        from mobile_sam import SamAutomaticMaskGenerator, SamPredictor, sam_model_registry
        kind = "vit_t"
    elif a.sam.endswith("_hq"):
        from segment_anything_hq import SamAutomaticMaskGenerator, SamPredictor, sam_model_registry
        kind = a.sam[:-3]
    else:
        from segment_anything import SamAutomaticMaskGenerator, SamPredictor, sam_model_registry
        kind = a.sam

    torch.manual_seed(0)
    sam = sam_model_registry[kind]().eval()

    import contextlib
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if a.bf16 else contextlib.nullcontext

    def emit(name, times, **extra):
        print(json.dumps({
            "name": f"torch_sam_{a.sam}_{name}", "median_s": statistics.median(times), "min_s": min(times),
            "precision": "bf16" if a.bf16 else "fp32",
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "threads": torch.get_num_threads(), "torch": torch.__version__, **extra,
        }), flush=True)

    if not a.skip_encoder:
        x = torch.randn(1, 3, 1024, 1024)
        times = []
        with torch.no_grad(), autocast():
            for _ in range(a.repeats):
                t = time.perf_counter()
                sam.image_encoder(x)
                times.append(time.perf_counter() - t)
        emit("encoder", times, size=1024)

    predictor = SamPredictor(sam)
    w, h = (int(v) for v in a.image.lower().split("x"))
    image = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    if not a.skip_decoder:
        predictor.set_image(image)
        points = torch.as_tensor(predictor.transform.apply_coords(np.random.default_rng(1).uniform(0, min(w, h), (64, 2)), image.shape[:2]))
        labels = torch.ones(64, dtype=torch.int)
        times = []
        for _ in range(a.repeats):
            t = time.perf_counter()
            predictor.predict_torch(points[:, None, :].float(), labels[:, None], multimask_output=True, return_logits=True)
            times.append(time.perf_counter() - t)
        median = statistics.median(times)
        emit("decoder", times, prompts=64, masks_per_s=round(64 * 3 / median, 1))

    if a.generator:
        thresholds = {} if a.keep == "defaults" else {"pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}
        if a.keep == "third":
            # Untimed: the predicted IoUs of 64 points of the 32x32 grid (every 16th, spread over the
            # image), three masks each; the value a third of those 192 exceed.
            side = np.linspace(1 / 64, 1 - 1 / 64, 32)
            grid = np.stack([np.tile(side, 32), np.repeat(side, 32)], axis=1)[::16] * np.array([w, h])
            predictor.set_image(image)
            coords = torch.as_tensor(predictor.transform.apply_coords(grid, image.shape[:2]), dtype=torch.float)
            ious = []
            with torch.no_grad():
                for i in range(0, len(grid), 16):  # 16 prompts a call: their masks at 1024² stay small
                    _, iou, _ = predictor.predict_torch(coords[i:i + 16, None, :], torch.ones(len(coords[i:i + 16]), 1, dtype=torch.int),
                                                        multimask_output=True, return_logits=True)
                    ious.append(iou.flatten().numpy())
            ranked = np.sort(np.concatenate(ious))[::-1]
            thresholds["pred_iou_thresh"] = float(ranked[len(ranked) // 3])
            if thresholds["pred_iou_thresh"] <= 0:  # the generator reads <= 0 as no filter at all
                sys.exit(f"bench_reference.py --keep third: a third of the sampled candidates pass only "
                         f"pred_iou_thresh {thresholds['pred_iou_thresh']} <= 0, which the generator reads as no filter")
        generator = SamAutomaticMaskGenerator(sam, **thresholds)
        t = time.perf_counter()
        records = generator.generate(image)
        extra = {"pred_iou_thresh": thresholds["pred_iou_thresh"]} if a.keep == "third" else {}
        emit("generator", [time.perf_counter() - t], image=f"{w}x{h}", points_per_side=32, keep=a.keep, masks=len(records),
             **extra)


def bench_crf(a):
    """pydensecrf per image (construction, unary, both kernels, 10 mean-field iterations) on inputs
    of the kind `wsss bench crf` makes; median over --repeats passes over --images images."""
    import cv2
    import numpy as np
    import pydensecrf.densecrf as dcrf
    from pydensecrf.utils import unary_from_softmax

    w, h, classes, iterations = 500, 375, 21, 10
    inputs = []
    for seed in range(a.images):
        rng = np.random.default_rng(seed)
        image = np.full((h, w, 3), 128, np.int32)
        for _ in range(12):
            x0, y0 = rng.integers(0, w), rng.integers(0, h)
            x1, y1 = min(w, x0 + 20 + rng.integers(0, 200)), min(h, y0 + 20 + rng.integers(0, 150))
            image[y0:y1, x0:x1] = rng.integers(0, 256, 3)
        image = np.clip(image + rng.integers(-4, 5, image.shape), 0, 255).astype(np.uint8)
        grid = ((rng.random((classes, 20, 26)) - 0.5) * 12).astype(np.float32)
        logits = np.stack([cv2.resize(g, (w, h), interpolation=cv2.INTER_LINEAR) for g in grid])
        p = np.exp(logits - logits.max(axis=0, keepdims=True))
        inputs.append((image, (p / p.sum(axis=0, keepdims=True)).astype(np.float32)))

    def one(image, prob):
        d = dcrf.DenseCRF2D(w, h, classes)
        d.setUnaryEnergy(np.ascontiguousarray(unary_from_softmax(prob)))
        d.addPairwiseGaussian(sxy=1, compat=3)
        d.addPairwiseBilateral(sxy=67, srgb=3, rgbim=np.ascontiguousarray(image), compat=4)
        return np.array(d.inference(iterations))

    one(*inputs[0])
    times = []
    for _ in range(a.repeats):
        t = time.perf_counter()
        for image, prob in inputs:
            one(image, prob)
        times.append((time.perf_counter() - t) / len(inputs))
    median = statistics.median(times)
    print(json.dumps({
        "name": "pydensecrf_dense_crf", "median_s": median, "min_s": min(times), "images_per_s": 1 / median,
        "size": f"{w}x{h}", "classes": classes, "iterations": iterations, "threads": 1, "images": len(inputs),
    }), flush=True)


def bench_detect(a):
    """The official Grounding DINO forward (backbone, BERT, encoder, decoder, heads) at the official input
    size, random weights; one warm-up, median of --repeats."""
    import shutil
    import tempfile

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures"))
    import gdino_official
    import groundingdino.datasets.transforms as T
    from groundingdino.util.inference import preprocess_caption
    from PIL import Image

    text_dir = tempfile.mkdtemp(prefix="gdino_bert_base_")
    try:
        gdino_official.write_text_encoder_dir(text_dir)
        model, _ = gdino_official.build(a.detect, text_dir, seed=0)
    finally:
        shutil.rmtree(text_dir, ignore_errors=True)
    transform = T.Compose([T.RandomResize([800], max_size=1333), T.ToTensor(),
                           T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    image, _ = transform(Image.fromarray(gdino_official.blob_image(1333, 800, seed=0)), None)
    assert list(image.shape) == [3, 800, 1333], image.shape
    caption = preprocess_caption(gdino_official.VOC_CAPTION)
    tokens = len(model.tokenizer(caption)["input_ids"])

    def forward():
        with torch.no_grad():
            return model(image[None], captions=[caption])

    forward()  # warm-up
    times = []
    for _ in range(a.repeats):
        t = time.perf_counter()
        forward()
        times.append(time.perf_counter() - t)
    median = statistics.median(times)
    print(json.dumps({
        "name": f"torch_gdino_{a.detect}_forward", "median_s": median, "min_s": min(times),
        "images_per_s": round(1 / median, 3), "size": "1333x800", "input": [1] + list(image.shape),
        "tokens": tokens, "queries": 900, "reps": len(times),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "threads": torch.get_num_threads(), "torch": torch.__version__,
    }), flush=True)


if __name__ == "__main__":
    main()
