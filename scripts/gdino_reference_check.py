#!/usr/bin/env python3
"""The official Grounding DINO at full size (Swin-T OGC or Swin-B) on random weights: a checkpoint, a
vocabulary, an image and the official outputs, for checking our Swift port end to end.

Run by hand (never in CI; it needs the reference Python, ~3 GB of RAM, ~0.7 GB (Swin-T) or ~0.9 GB
(Swin-B) of disk and a few minutes of CPU). No official checkpoint can be downloaded here, so:

    ~/.cache/wsss-ref/bin/python scripts/gdino_reference_check.py --out /tmp/gdino-swint
    ~/.cache/wsss-ref/bin/python scripts/gdino_reference_check.py --out /tmp/gdino-swinb --config swin_b

What it does (seeded, --seed, default 0: a rerun with the same package versions makes the same weights,
image and outputs):

1. <out>/bert/: config.json (transformers' BertConfig(): bert-base-uncased's sizes), tokenizer_config.json
   and vocab.txt (30522 lines laid out as bert-base-uncased's where ids matter: [CLS] 101, [SEP] 102,
   '.' 1012, '?' 1029; scripts/fixtures/gdino_official.vocab_lines). No BERT weights: they are in the
   checkpoint.
2. The official model, built by groundingdino's build_model from the official configuration file
   (GroundingDINO_SwinT_OGC.py / GroundingDINO_SwinB_cfg.py) with random weights: gdino_tiny.randomise
   then gdino_official.temper (position and bias tables, layer scales, offsets and box heads all
   non-trivial; see gdino_official.py for why and what). Saved as <out>/gdino_<config>_random.pth in the
   released layout, torch.save({'model': {'module.' + key: tensor}}) with the released checkpoints' two
   extras (label_enc.weight, bert.embeddings.position_ids), float32; the file is read back and
   checked against the model, and loads as the official load_model() loads it (strict=False: nothing
   missing, only the two extras unexpected).
3. <out>/image.png: a 640x480 picture of smooth random blobs (gdino_official.blob_image), read back
   through the official load_image() (RandomResize([800], max_size=1333), ToTensor, Normalize):
   the model input is [1, 3, 800, 1066].
4. The caption: the 20 VOC class names joined by " . " (predict() lower-cases it and appends " .").
   One timed forward model(image[None], captions=[caption]) (hooks keep the encoder's output), then
   the official groundingdino.util.inference.predict(model, image, caption, box_threshold,
   text_threshold, device="cpu") (a second forward, also timed; its outputs are checked equal to the
   first), and predict(..., remove_combined=True) on the same outputs (the model is not run again).
   Thresholds: --box-threshold / --text-threshold, else chosen from the outputs: the box threshold
   the highest on a 0.005 grid keeping 3 to 10 queries, the text threshold the highest on that grid
   for which predict() gives every kept box a non-empty phrase (many queries' best token is a " ."
   separator, which predict() drops from the phrase); both more than 5e-4 away from every probability
   they are compared with (so float32 differences cannot flip a decision; closest_score_to_a_threshold
   in report.json).
5. <out>/official.h5 (h5py, gzip; float32 unless said):
     attrs: config, seed, caption, caption_preprocessed, checkpoint, vocab, image, temper, versions,
            threads, timings_s (JSON)
     /image/source [480, 640, 3] uint8 (the PNG's pixels), /image/resized [800, 1066, 3] uint8 (PIL
            bilinear resize inside the official transform; the model input is (resized / 255 - mean)
            / std in float32, checked bit for bit), /image/tensor_shape [4] int64 = 1, 3, 800, 1066
     /text/input_ids, attention_mask, token_type_ids, position_ids [1, T] int64,
            text_self_attention_masks [1, T, T] uint8, encoded_text [1, T, 256] (feat_map(BERT)),
            memory_text [1, T, 256] (the encoder's text output)
     /encoder/memory [1, S, 256] (the encoder's image output; S = sum of H_l * W_l over the four
            levels), spatial_shapes [4, 2] int64, level_start_index [4] int64
     /outputs/pred_logits [1, 900, T] (the first T = token-count columns; the rest are -inf),
            pred_boxes [1, 900, 4] (cx, cy, w, h in [0, 1])
     /predict/: boxes [n, 4] (cx, cy, w, h), boxes_xyxy [n, 4] (pixels of the 640x480 image, as
            `wsss detect image` prints them), scores [n], kept_queries [n] int64;
            attrs box_threshold, text_threshold, phrases, remove_combined_phrases (JSON lists)
   and <out>/report.json, the JSON object this script prints (paths, timings, results, commands).

Timings are wall seconds of in-process calls on the built model (torch threads: --threads, default
torch's own), the first forward including one-time allocations.

Comparing with our port (release build; `swift build -c release` by whoever builds):

    .build/release/wsss detect image --checkpoint <out>/gdino_swint_random.pth --vocab <out>/bert/vocab.txt \
        --image <out>/image.png --caption "<caption>" --box-threshold <b> --text-threshold <t> --json
    (the exact line, thresholds filled in, is in report.json as commands.detect_image)

prints [{label, box: [x0, y0, x1, y1] pixels, score, text_score}] in query order; it should give the
same kept queries as /predict: the same phrases (the official ones keep the space left where predict()
removed a '.', e.g. " chair cow"; remove_combined_phrases are GroundingOptions.removeCombined's, which
the CLI does not expose), scores within ~1e-3, boxes within ~0.5 px (boxes_xyxy; not clipped to the
image, as predict() does not clip). A
Swift-side comparison of the raw tensors reads official.h5 and the checkpoint: run GroundingDINO on
the model input (from /image/resized, or the port's own resize of image.png, checked against it) and
the caption, and compare /text (ids and masks exactly), /encoder/memory and /text/memory_text,
/outputs/pred_logits and /outputs/pred_boxes with max|ours - official| / max|official| <= 1e-3
(float32 throughout, sums in other orders than torch's).
"""
import argparse
import contextlib
import io
import json
import os
import sys
import time

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures"))
import gdino_official  # noqa: E402
from make_gdino_fixtures import round_threshold  # noqa: E402

IMAGE_WIDTH, IMAGE_HEIGHT = 640, 480
GRID = [round(float(t), 3) for t in np.arange(0.995, 0.0, -0.005)]
# No compared probability this close to a threshold: near p = 0.95 that is 0.01 in logit, far above the
# float32 differences expected between two implementations. (The tiny fixtures' 0.003 is too wide here:
# the 900 queries' best scores lie a few 1e-4 apart at the top.)
THRESHOLD_MARGIN = 5e-4
SHORT = {"swin_t": "swint", "swin_b": "swinb"}


def parse_arguments():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="folder for the checkpoint, vocabulary, image and outputs (created)")
    p.add_argument("--config", choices=sorted(gdino_official.CONFIGS), default="swin_t",
                   help="official configuration (default: swin_t)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and the image (default: 0)")
    p.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's own)")
    p.add_argument("--box-threshold", type=float, help="predict()'s box threshold (default: chosen, see above)")
    p.add_argument("--text-threshold", type=float, help="predict()'s text threshold (default: chosen, see above)")
    return p.parse_args()


def versions():
    from importlib.metadata import version

    return {name: version(name) for name in ("rf-groundingdino", "transformers", "torch", "torchvision", "Pillow")}


def peak_rss_mb():
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


# ---------------------------------------------------------------- 2. weights

def save_checkpoint(model, args, path):
    """The released layout; read back and checked against the model and against load_model()'s rules."""
    from groundingdino.util.misc import clean_state_dict

    torch.save(gdino_official.official_checkpoint(model, args), path)
    loaded = torch.load(path, map_location="cpu")
    sd = model.state_dict()
    for k, v in sd.items():
        assert torch.equal(loaded["model"]["module." + k], v), k
    result = model.load_state_dict(clean_state_dict(loaded["model"]), strict=False)
    assert not result.missing_keys, result.missing_keys
    extras = sorted(result.unexpected_keys)
    assert extras == ["bert.embeddings.position_ids", "label_enc.weight"], extras
    return {"path": path, "bytes": os.path.getsize(path), "keys": len(loaded["model"]), "extras": extras,
            "parameters": sum(p.numel() for p in model.parameters())}


# ---------------------------------------------------------------- 3. image

def write_image(path, seed):
    """The PNG, and what the official load_image() makes of it: (pixels, resized PIL image, tensor)."""
    import groundingdino.datasets.transforms as T
    from groundingdino.util.inference import load_image

    Image.fromarray(gdino_official.blob_image(IMAGE_WIDTH, IMAGE_HEIGHT, seed), mode="RGB").save(path)
    source, image = load_image(path)
    resized, _ = T.RandomResize([800], max_size=1333)(Image.open(path).convert("RGB"), None)
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    expected = (torch.from_numpy(np.array(resized)).permute(2, 0, 1).float().div(255) - mean) / std
    assert torch.equal(image, expected), "the model input is not (resized / 255 - mean) / std in float32"
    return source, np.array(resized), image


# ---------------------------------------------------------------- 4. thresholds and predict

def choose_thresholds(probs, box_threshold, text_threshold, phrases_at):
    """probs: sigmoid(pred_logits[0, :, :T]) [nq, T]; phrases_at(box_threshold, text_threshold): the
    official predict()'s phrases. See the module docstring."""
    notes = []
    best = probs.max(1)[0].numpy()
    if box_threshold is None:
        box_threshold = round_threshold(best, (3, 10), margin=THRESHOLD_MARGIN)
        if box_threshold is None:
            box_threshold = 0.35
            notes.append("no grid box threshold keeps 3-10 queries clear of every score: the official 0.35")
    kept = probs[torch.from_numpy(best > box_threshold)].numpy()
    if text_threshold is None and len(kept):
        for t in GRID:
            if np.min(np.abs(kept - t)) > THRESHOLD_MARGIN and all(phrases_at(box_threshold, t)):
                text_threshold = t
                break
        if text_threshold is None:
            notes.append("no grid text threshold gives every kept box a phrase: the official 0.25")
    if text_threshold is None:
        text_threshold = 0.25
    return box_threshold, text_threshold, notes


class CachedOutputs(torch.nn.Module):
    """Stands in for the model inside predict(): returns `outputs` for the same image and caption."""

    def __init__(self, model, image, caption, outputs):
        super().__init__()
        self.tokenizer = model.tokenizer
        self._expected = (image, caption)
        self._outputs = outputs

    def forward(self, samples, captions):
        assert torch.equal(samples[0], self._expected[0]) and captions == [self._expected[1]]
        return self._outputs


def official_predict(model, image, caption, box_threshold, text_threshold, remove_combined=False):
    from groundingdino.util.inference import predict

    with contextlib.redirect_stdout(io.StringIO()):
        return predict(model, image, caption, box_threshold, text_threshold, device="cpu",
                       remove_combined=remove_combined)


# ---------------------------------------------------------------- main

def main():
    a = parse_arguments()
    if a.threads is not None:
        if a.threads < 1:
            sys.exit("--threads must be at least 1")
        torch.set_num_threads(a.threads)
    from groundingdino.models.GroundingDINO.bertwarper import generate_masks_with_special_tokens_and_transfer_map
    from groundingdino.util.inference import preprocess_caption

    os.makedirs(a.out, exist_ok=True)
    timings = {}
    report = {"config": a.config, "seed": a.seed, "threads": torch.get_num_threads(), "versions": versions(),
              "out": os.path.abspath(a.out)}

    # 1-2. vocabulary and weights
    vocab = gdino_official.write_text_encoder_dir(os.path.join(a.out, "bert"))
    start = time.perf_counter()
    model, args = gdino_official.build(a.config, os.path.join(a.out, "bert"), seed=a.seed)
    timings["build"] = time.perf_counter() - start
    checkpoint = os.path.join(a.out, f"gdino_{SHORT[a.config]}_random.pth")
    start = time.perf_counter()
    report["checkpoint"] = save_checkpoint(model, args, checkpoint)
    timings["save_and_verify_checkpoint"] = time.perf_counter() - start
    report["vocab"] = vocab

    # 3. image
    image_path = os.path.join(a.out, "image.png")
    source, resized, image = write_image(image_path, a.seed)
    report["image"] = {"path": image_path, "width": IMAGE_WIDTH, "height": IMAGE_HEIGHT,
                       "model_input": [1] + list(image.shape)}

    # 4. forward, thresholds, predict
    raw_caption = gdino_official.VOC_CAPTION
    caption = preprocess_caption(raw_caption)
    captured = {}
    t = model.transformer
    t.encoder.register_forward_pre_hook(lambda m, args_, kw: captured.__setitem__("encoder_kwargs", kw),
                                        with_kwargs=True)
    t.encoder.register_forward_hook(lambda m, i, o: captured.__setitem__("encoder", o))
    model.feat_map.register_forward_hook(lambda m, i, o: captured.__setitem__("feat_map", o))
    runs = []
    model.register_forward_hook(lambda m, i, o: runs.append(o))
    with torch.no_grad():
        start = time.perf_counter()
        outputs = model(image[None], captions=[caption])
        timings["forward"] = time.perf_counter() - start
    memory, memory_text = captured["encoder"]
    encoder_kwargs = captured["encoder_kwargs"]

    tok = model.tokenizer([caption], padding="longest", return_tensors="pt")
    masks, position_ids, _ = generate_masks_with_special_tokens_and_transfer_map(tok, model.specical_tokens,
                                                                                 model.tokenizer)
    n_tok = tok["input_ids"].shape[1]
    assert torch.isinf(outputs["pred_logits"][..., n_tok:]).all()
    probs = outputs["pred_logits"][0, :, :n_tok].sigmoid()
    cached = CachedOutputs(model, image, caption, outputs)
    box_threshold, text_threshold, notes = choose_thresholds(
        probs, a.box_threshold, a.text_threshold,
        lambda b, t: official_predict(cached, image, raw_caption, b, t)[2])

    start = time.perf_counter()
    boxes, scores, phrases = official_predict(model, image, raw_caption, box_threshold, text_threshold)
    timings["predict"] = time.perf_counter() - start
    assert len(runs) == 2 and all(torch.equal(runs[1][k], outputs[k]) for k in ("pred_logits", "pred_boxes")), \
        "predict()'s forward differs from the first"
    boxes_rc, scores_rc, phrases_rc = official_predict(cached, image, raw_caption, box_threshold, text_threshold,
                                                       remove_combined=True)
    assert torch.equal(boxes, boxes_rc) and torch.equal(scores, scores_rc)
    best = probs.max(1)[0]
    kept_queries = torch.nonzero(best > box_threshold)[:, 0]
    assert torch.equal(outputs["pred_boxes"][0, kept_queries], boxes)
    W, H = IMAGE_WIDTH, IMAGE_HEIGHT
    cx, cy, w, h = boxes.unbind(-1)
    boxes_xyxy = torch.stack([(cx - w / 2) * W, (cy - h / 2) * H, (cx + w / 2) * W, (cy + h / 2) * H], -1)
    timings["peak_rss_mb"] = peak_rss_mb()

    # 5. outputs
    h5_path = os.path.join(a.out, "official.h5")
    gz = {"compression": "gzip", "compression_opts": 4}
    with h5py.File(h5_path, "w") as f:
        f.attrs["generator"] = "scripts/gdino_reference_check.py"
        f.attrs["config"] = a.config
        f.attrs["config_file"] = gdino_official.CONFIGS[a.config]
        f.attrs["seed"] = a.seed
        f.attrs["caption"] = raw_caption
        f.attrs["caption_preprocessed"] = caption
        f.attrs["checkpoint"] = checkpoint
        f.attrs["vocab"] = vocab
        f.attrs["image"] = image_path
        f.attrs["temper"] = json.dumps(gdino_official.TEMPER, sort_keys=True)
        f.attrs["versions"] = json.dumps(report["versions"], sort_keys=True)
        f.attrs["threads"] = torch.get_num_threads()
        f.attrs["timings_s"] = json.dumps(timings, sort_keys=True)
        f.create_dataset("image/source", data=source, **gz)
        f.create_dataset("image/resized", data=resized, **gz)
        f["image/tensor_shape"] = np.array([1] + list(image.shape), np.int64)
        for k in ("input_ids", "attention_mask", "token_type_ids"):
            f[f"text/{k}"] = tok[k].numpy().astype(np.int64)
        f["text/position_ids"] = position_ids.numpy().astype(np.int64)
        f["text/text_self_attention_masks"] = masks.numpy().astype(np.uint8)
        f["text/encoded_text"] = captured["feat_map"].numpy().astype(np.float32)
        f["text/memory_text"] = memory_text.numpy().astype(np.float32)
        f.create_dataset("encoder/memory", data=memory.numpy().astype(np.float32), **gz)
        f["encoder/spatial_shapes"] = encoder_kwargs["spatial_shapes"].numpy().astype(np.int64)
        f["encoder/level_start_index"] = encoder_kwargs["level_start_index"].numpy().astype(np.int64)
        f.create_dataset("outputs/pred_logits", data=outputs["pred_logits"][..., :n_tok].numpy(), **gz)
        f.create_dataset("outputs/pred_boxes", data=outputs["pred_boxes"].numpy(), **gz)
        g = f.create_group("predict")
        g["boxes"] = boxes.numpy()
        g["boxes_xyxy"] = boxes_xyxy.numpy()
        g["scores"] = scores.numpy()
        g["kept_queries"] = kept_queries.numpy().astype(np.int64)
        g.attrs["box_threshold"] = box_threshold
        g.attrs["text_threshold"] = text_threshold
        g.attrs["phrases"] = json.dumps(phrases)
        g.attrs["remove_combined_phrases"] = json.dumps(phrases_rc)
        g.attrs["call"] = ("groundingdino.util.inference.predict(model, image, caption, box_threshold, "
                           "text_threshold, device='cpu'[, remove_combined=True])")

    gaps = np.abs(np.concatenate([best.numpy() - box_threshold,
                                  (probs[kept_queries].numpy() - text_threshold).ravel()]))
    report.update({
        "official_h5": h5_path,
        "tokens": n_tok,
        "memory_shape": list(memory.shape),
        "spatial_shapes": encoder_kwargs["spatial_shapes"].tolist(),
        "best_token_probability_quantiles_0_10_50_90_100": np.quantile(best.numpy(), [0, .1, .5, .9, 1]).round(4).tolist(),
        "predict": {
            "box_threshold": box_threshold, "text_threshold": text_threshold, "threshold_notes": notes,
            "closest_score_to_a_threshold": float(gaps.min()),
            "kept_queries": kept_queries.tolist(),
            "boxes_xyxy": boxes_xyxy.numpy().round(2).tolist(),
            "scores": scores.numpy().round(5).tolist(),
            "phrases": phrases, "remove_combined_phrases": phrases_rc,
        },
        "timings_s": {**{k: (round(v, 3) if k != "peak_rss_mb" else v) for k, v in timings.items()},
                      "note": "in-process, on the built model; forward = model(image[None], captions=[caption]) "
                              "once (the first call); predict = the official predict() (a second forward + "
                              "post-processing); peak_rss_mb of the whole process"},
        "commands": {
            "detect_image": (f".build/release/wsss detect image --checkpoint {checkpoint} --vocab {vocab} "
                             f"--image {image_path} --caption \"{raw_caption}\" --box-threshold {box_threshold} "
                             f"--text-threshold {text_threshold} --json"
                             + (f" --threads {a.threads}" if a.threads else "")),
            "convert": f".build/release/wsss detect convert {checkpoint} {os.path.splitext(checkpoint)[0]}.h5",
        },
    })
    with open(os.path.join(a.out, "report.json"), "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
