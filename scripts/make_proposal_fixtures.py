#!/usr/bin/env python3
"""Reference fixtures for segment proposals: pycocotools RLE and scikit-image Felzenszwalb.

Writes Tests/Fixtures/proposals/:
  rle_list.json      amg.py --convert-to-rle style list (compressed counts strings)
  rle_sa1b.json      SA-1B style {"image": ..., "annotations": [...]} with uncompressed counts
  photo.png, shapes.png   small RGB test images
  proposals.h5       /rle/<k>/mask  uint8 [H, W]  the masks both JSON files encode
                     /felzenszwalb/<image>_<k>  int32 [H, W] skimage segments; attributes
                       scale, sigma, min_size on each dataset
Needs: numpy, h5py, pycocotools, scikit-image, Pillow (scripts/requirements-fixtures.txt).
"""
import json
import os

import h5py
import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils
from skimage import data, transform
from skimage.segmentation import felzenszwalb

OUT = os.path.join(os.path.dirname(__file__), "..", "Tests", "Fixtures", "proposals")


def blobs(rng, h, w, count):
    yy, xx = np.mgrid[0:h, 0:w]
    masks = []
    for k in range(count):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        ry, rx = rng.uniform(2, h / 2), rng.uniform(2, w / 2)
        m = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        if k % 3 == 2:  # holes and specks: many runs, long counts
            m &= rng.random((h, w)) > 0.3
        masks.append(m.astype(np.uint8))
    masks.append(np.zeros((h, w), np.uint8))  # empty
    masks.append(np.ones((h, w), np.uint8))  # full
    big = np.zeros((h, w), np.uint8)
    big[:, 3:] = 1  # a long first run of ones after a short zero run
    masks.append(big)
    return masks


def rle_fixtures(f):
    rng = np.random.default_rng(0)
    h, w = 37, 53
    masks = blobs(rng, h, w, 9)
    records, annotations = [], []
    for k, m in enumerate(masks):
        rle = mask_utils.encode(np.asfortranarray(m))
        counts = rle["counts"].decode("ascii")
        assert (mask_utils.decode({"size": rle["size"], "counts": counts}) == m).all()
        records.append({"segmentation": {"size": [h, w], "counts": counts}, "area": int(m.sum()),
                        "bbox": [float(v) for v in mask_utils.toBbox(rle)], "predicted_iou": 0.9 - 0.01 * k,
                        "point_coords": [[0.0, 0.0]], "stability_score": 0.95, "crop_box": [0, 0, w, h]})
        flat = m.flatten(order="F")
        runs, current, n = [], 0, 0
        for v in flat:
            if v != current:
                runs.append(n)
                current, n = v, 0
            n += 1
        runs.append(n)
        annotations.append({"id": k, "segmentation": {"size": [h, w], "counts": runs}, "area": int(m.sum()),
                            "bbox": records[-1]["bbox"], "predicted_iou": 0.8, "stability_score": 0.9})
        f.create_dataset(f"rle/{k}/mask", data=m)
    with open(os.path.join(OUT, "rle_list.json"), "w") as fh:
        json.dump(records, fh)
    with open(os.path.join(OUT, "rle_sa1b.json"), "w") as fh:
        json.dump({"image": {"image_id": 1, "width": w, "height": h, "file_name": "x.jpg"}, "annotations": annotations}, fh)


def shapes_image(rng):
    h, w = 48, 64
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.zeros((h, w, 3), np.float64)
    img[:] = [90, 80, 60]
    img += 30 * np.sin(xx * 0.07 + yy * 0.05)[..., None]
    disc = (yy - 20) ** 2 + (xx - 18) ** 2 <= 121
    img[disc] = [40, 140, 200]
    box = (np.abs(yy - 30) <= 9) & (np.abs(xx - 45) <= 12)
    img[box] = [200, 60, 60]
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def felzenszwalb_fixtures(f):
    rng = np.random.default_rng(1)
    photo = (transform.resize(data.astronaut(), (48, 48), anti_aliasing=True) * 255).round().astype(np.uint8)
    images = {"photo": photo, "shapes": shapes_image(rng)}
    settings = [(100, 0.8, 20), (300, 0.5, 10), (50, 1.5, 5)]
    for name, img in images.items():
        Image.fromarray(img).save(os.path.join(OUT, f"{name}.png"))
        for k, (scale, sigma, min_size) in enumerate(settings):
            seg = felzenszwalb(img, scale=scale, sigma=sigma, min_size=min_size).astype(np.int32)
            d = f.create_dataset(f"felzenszwalb/{name}_{k}", data=seg)
            d.attrs["scale"], d.attrs["sigma"], d.attrs["min_size"] = float(scale), float(sigma), int(min_size)


def main():
    os.makedirs(OUT, exist_ok=True)
    with h5py.File(os.path.join(OUT, "proposals.h5"), "w") as f:
        rle_fixtures(f)
        felzenszwalb_fixtures(f)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
