#!/usr/bin/env python3
"""Writes Tests/Fixtures/images/: small PNG and JPEG files in every flavour we decode, plus
images.h5 holding what PIL decodes from each (np.array(Image.open(f)) and .convert("RGB")),
and a VOC-style scoring case: prediction and ground-truth label maps with the confusion matrix,
per-class IoU, mIoU and pixel accuracy of the `scores()` function common to DeepLab/WSSS
PyTorch repos (re-written below with numpy's bincount, as those repos do).

Run: ~/.cache/wsss-ref/bin/python scripts/make_image_fixtures.py
"""
import os

import h5py
import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "Tests", "Fixtures", "images")
rng = np.random.default_rng(0)


def photo(h, w):
    """A smooth gradient with noise and a few edges: exercises JPEG's DCT and chroma paths."""
    y, x = np.mgrid[0:h, 0:w]
    r = (x * 255 / w)
    g = (y * 255 / h)
    b = 128 + 100 * np.sin(x / 3.0) * np.cos(y / 4.0)
    img = np.stack([r, g, b], -1) + rng.normal(0, 12, (h, w, 3))
    img[h // 3: h // 2, w // 4: w // 2] = [250, 20, 30]
    return np.clip(img, 0, 255).astype(np.uint8)


def voc_palette():
    pal = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal += [r, g, b]
    return pal


def fast_hist(label_true, label_pred, n_class):
    mask = (label_true >= 0) & (label_true < n_class)
    return np.bincount(n_class * label_true[mask].astype(int) + label_pred[mask], minlength=n_class ** 2).reshape(n_class, n_class)


def scores(label_trues, label_preds, n_class):
    hist = np.zeros((n_class, n_class))
    for lt, lp in zip(label_trues, label_preds):
        for a, b in zip(lt, lp):
            hist += fast_hist(a.flatten(), b.flatten(), n_class)
    acc = np.diag(hist).sum() / hist.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        iu = np.diag(hist) / (hist.sum(axis=1) + hist.sum(axis=0) - np.diag(hist))
    return hist, iu, np.nanmean(iu), acc


def main():
    os.makedirs(OUT, exist_ok=True)
    files = {}
    img = photo(29, 37)
    Image.fromarray(img).save(f"{OUT}/rgb_q75_420.jpg", quality=75)
    Image.fromarray(img).save(f"{OUT}/rgb_q95_444.jpg", quality=95, subsampling=0)
    Image.fromarray(img).save(f"{OUT}/rgb_q90_422.jpg", quality=90, subsampling=1)
    Image.fromarray(img).save(f"{OUT}/rgb_progressive.jpg", quality=80, progressive=True)
    Image.fromarray(img[:, :, 1]).save(f"{OUT}/grey.jpg", quality=85)
    Image.fromarray(img).save(f"{OUT}/rgb.png")
    rgba = np.concatenate([img, rng.integers(0, 256, (29, 37, 1), dtype=np.uint8)], -1)
    Image.fromarray(rgba).save(f"{OUT}/rgba.png")
    Image.fromarray(img[:, :, 0]).save(f"{OUT}/grey.png")
    Image.fromarray((img[:, :, 0] > 128).astype(np.uint8) * 255).convert("1").save(f"{OUT}/bilevel.png")
    # A VOC-style label: palette PNG with classes and an ignore border.
    label = np.zeros((29, 37), np.uint8)
    label[5:20, 3:15] = 15
    label[10:25, 20:33] = 7
    label[4:6, :] = 255
    p = Image.fromarray(label, mode="P")
    p.putpalette(voc_palette())
    p.save(f"{OUT}/label_palette.png")
    Image.fromarray(label).save(f"{OUT}/label_grey.png")
    # 16-bit grey labels (some tools write them): wsss refuses them, since 8-bit decoding would keep
    # only the high byte and read every class id below 256 as background.
    Image.fromarray(label.astype(np.uint16)).save(f"{OUT}/label_16bit.png")
    pr = Image.fromarray(label, mode="P")
    pr.putpalette(voc_palette())
    pr.convert("RGB").save(f"{OUT}/label_rgb.png")
    with h5py.File(f"{OUT}/images.h5", "w") as f:
        for name in sorted(os.listdir(OUT)):
            if not (name.endswith(".png") or name.endswith(".jpg")):
                continue
            im = Image.open(f"{OUT}/{name}")
            raw = np.array(im)
            if raw.dtype == bool:
                raw = raw.astype(np.uint8) * 255
            f.create_dataset(f"raw/{name}", data=raw.astype(np.uint8), compression="gzip")
            f.create_dataset(f"rgb/{name}", data=np.array(im.convert("RGB")), compression="gzip")
            f[f"raw/{name}"].attrs["mode"] = im.mode
        # Scoring: 3 images, 4 classes + ignore; class 3 absent from ground truth but predicted,
        # class 2 absent from both in image 0.
        n_class = 5
        gts, preds = [], []
        for k in range(3):
            gt = rng.integers(0, 3, (7, 9)).astype(np.int64)
            gt[rng.random((7, 9)) < 0.15] = 255
            pred = gt.copy()
            flip = rng.random((7, 9)) < 0.3
            pred[flip] = rng.integers(0, 4, flip.sum())
            pred[pred == 255] = rng.integers(0, 4, (pred == 255).sum())
            gts.append(gt)
            preds.append(pred)
        hist, iu, miou, acc = scores([gts], [preds], n_class)
        g = f.create_group("scores")
        g["gt"] = np.stack(gts).astype(np.int32)
        g["pred"] = np.stack(preds).astype(np.int32)
        g["confusion"] = hist.astype(np.int64)
        g["iou"] = iu
        g.attrs["miou"] = float(miou)
        g.attrs["pixel_accuracy"] = float(acc)
        g.attrs["classes"] = n_class
    print("wrote", OUT, sum(os.path.getsize(os.path.join(OUT, n)) for n in os.listdir(OUT)) // 1024, "KiB")


if __name__ == "__main__":
    main()
