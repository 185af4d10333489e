#!/usr/bin/env python3
"""Writes Tests/Fixtures/ops.h5: PyTorch reference outputs and gradients for every tensor op.

Layout: one group per case, /<op>/<case>/, holding the inputs (x, weight, bias, ...), the
output y, a random upstream gradient dy, and the gradients d<input> = d(sum(y * dy))/d<input>.
Op settings (stride, padding, ...) are attributes of the case group. References are computed in
float64 (exact enough to judge our float32), except resizes, whose source indices torch computes
in float for float tensors: those run in float32 so the same pixels are picked. Fixed seeds.

Inputs, dy and the SGD case's starting values and gradients are float16-representable (random
draws rounded to float16 before any reference is computed) and stored as float16, which libhdf5
converts back to the same float32 values on reading; outputs and gradients are float32. The
max-selection ops (max_pool2d, max, max_all) keep float32 inputs: float16 rounding would make
ties, and which of two equal values takes the gradient is not what those cases test. Files are
written by scripts/fixtures/compact_h5.py (gzip, HDF5 1.10 objects, small headers).

Run: ~/.cache/wsss-ref/bin/python scripts/make_fixtures.py   (see scripts/requirements-fixtures.txt)
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures"))
import compact_h5  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "Tests", "Fixtures", "ops.h5")
torch.manual_seed(0)


def rand(*shape, dtype=torch.float64, half=True):
    """Random normal values, float16-representable (half=False: float32-representable), so both
    sides start from the same numbers and the file can hold them as float16."""
    x = torch.randn(*shape, dtype=torch.float32)
    return (x.half() if half else x).to(dtype).requires_grad_(True)


def h16(t):
    """A derived input (rand() * 3, rand() + 0.5, ...) rounded to float16-representable values."""
    return compact_h5.half(t.detach()).requires_grad_(t.requires_grad)


def put(group, name, array, input=False):
    """An output or gradient as float32; an input (input=True) as float16 when every value fits."""
    array = np.asarray(array)
    if array.dtype.kind == "f":
        array = array.astype(np.float32)
    compact_h5.put(group, name, array, half=input and array.dtype.kind == "f" and compact_h5.fits_half(array))


def save(f, op, case, inputs, output, attrs=None, extra=None, extra_inputs=None):
    g = f.create_group(f"{op}/{case}")
    dy = torch.randn(output.shape, dtype=torch.float32).half().to(output.dtype)
    grads = torch.autograd.grad(output, [t for t in inputs.values() if t.requires_grad], dy, allow_unused=True)
    put(g, "y", output.detach().float().numpy())
    put(g, "dy", dy.float().numpy(), input=True)
    it = iter(grads)
    for name, t in inputs.items():
        put(g, name, t.detach().numpy(), input=True)
        if t.requires_grad:
            gr = next(it)
            put(g, "d" + name, (gr if gr is not None else torch.zeros_like(t)).float().numpy())
    for k, v in (attrs or {}).items():
        g.attrs[k] = v
    for k, v in (extra_inputs or {}).items():
        put(g, k, v, input=True)
    for k, v in (extra or {}).items():
        put(g, k, v)


def conv_cases(f):
    cases = [  # name, N, Cin, H, W, Cout, k, stride, padding, dilation, bias
        ("k3_s1_p1", 2, 3, 7, 9, 4, 3, 1, 1, 1, True),
        ("k3_s2_p1_odd", 2, 3, 9, 7, 5, 3, 2, 1, 1, True),
        ("k3_d2_p2", 1, 4, 11, 10, 3, 3, 1, 2, 2, True),
        ("k3_d4_p4", 1, 3, 13, 12, 2, 3, 1, 4, 4, False),
        ("k3_d6_p6", 2, 2, 15, 14, 3, 3, 1, 6, 6, True),
        ("k1_s1", 2, 6, 5, 7, 4, 1, 1, 0, 1, False),
        ("k1_s2", 1, 5, 9, 8, 3, 1, 2, 0, 1, True),
        ("k7_s2_p3", 1, 3, 17, 15, 4, 7, 2, 3, 1, False),
        ("k3_s1_p0_d2", 1, 3, 10, 9, 2, 3, 1, 0, 2, True),
    ]
    for name, n, cin, h, w, cout, k, s, p, d, bias in cases:
        x, wt = rand(n, cin, h, w), rand(cout, cin, k, k)
        inputs = {"x": x, "weight": wt}
        if bias:
            inputs["bias"] = rand(cout)
        y = F.conv2d(x, wt, inputs.get("bias"), stride=s, padding=p, dilation=d)
        save(f, "conv2d", name, inputs, y, {"stride": s, "padding": p, "dilation": d})


def batch_norm_cases(f):
    for name, training, shape in [("train", True, (3, 4, 5, 6)), ("train_n1", True, (1, 3, 4, 5)),
                                  ("frozen", False, (2, 3, 5, 4))]:
        c = shape[1]
        x, wt, b = rand(*shape), rand(c), rand(c)
        rm = torch.randn(c, dtype=torch.float32).half().double()
        rv = compact_h5.half(torch.rand(c, dtype=torch.float32) + 0.5).double()
        before_m, before_v = rm.clone(), rv.clone()
        y = F.batch_norm(x, rm, rv, wt, b, training=training, momentum=0.1, eps=1e-5)
        save(f, "batch_norm", name, {"x": x, "weight": wt, "bias": b}, y, {"training": int(training)},
             {"running_mean_after": rm.float().numpy(), "running_var_after": rv.float().numpy()},
             {"running_mean": before_m.float().numpy(), "running_var": before_v.float().numpy()})


def elementwise_cases(f):
    a, b = rand(2, 3, 4, 5), rand(3, 1, 1)
    save(f, "add", "broadcast", {"a": a, "b": b}, a + b)
    a, b = rand(2, 3, 4), rand(2, 3, 4)
    save(f, "add", "same", {"a": a, "b": b}, a + b)
    a, b = rand(2, 3, 4, 5), rand(1, 3, 1, 5)
    save(f, "sub", "broadcast", {"a": a, "b": b}, a - b)
    a, b = rand(2, 3, 4, 5), rand(2, 3, 1, 1)
    save(f, "mul", "broadcast", {"a": a, "b": b}, a * b)
    a, b = rand(4, 5), rand(5)
    save(f, "mul", "row", {"a": a, "b": b}, a * b)
    a = rand(3, 4)
    b = compact_h5.half(torch.rand(3, 1, dtype=torch.float32) + 0.5).double().requires_grad_(True)
    save(f, "div", "broadcast", {"a": a, "b": b}, a / b)
    x = rand(2, 3, 4)
    save(f, "scalar", "affine", {"x": x}, x * 2.5 + 0.75, {"scale": 2.5, "shift": 0.75})
    x = rand(2, 3, 5, 4)
    save(f, "relu", "nchw", {"x": x}, F.relu(x))


def pool_cases(f):
    cases = [  # name, shape, kernel, stride, padding, ceil
        ("k3_s2_p1_ceil", (2, 3, 9, 8), 3, 2, 1, True),
        ("k3_s2_p1_floor", (2, 3, 9, 8), 3, 2, 1, False),
        ("k3_s2_p0_ceil", (1, 2, 8, 7), 3, 2, 0, True),
        ("k2_s2_ceil_odd", (1, 2, 7, 5), 2, 2, 0, True),
        ("k3_s1_p1", (1, 2, 5, 6), 3, 1, 1, False),
        ("k3_s2_p1_ceil_65", (1, 1, 65, 65), 3, 2, 1, True),
    ]
    for name, shape, k, s, p, ceil in cases:
        x = rand(*shape, half=False)
        save(f, "max_pool2d", name, {"x": x}, F.max_pool2d(x, k, s, p, ceil_mode=ceil),
             {"kernel": k, "stride": s, "padding": p, "ceil_mode": int(ceil)})
    x = rand(2, 3, 5, 7)
    save(f, "global_avg_pool", "nchw", {"x": x}, F.adaptive_avg_pool2d(x, 1))


def resize_cases(f):
    for name, shape, size, align in [("up_false", (2, 3, 5, 7), (11, 9), False), ("up_true", (2, 3, 5, 7), (11, 9), True),
                                     ("down_false", (1, 2, 17, 13), (6, 5), False), ("down_true", (1, 2, 17, 13), (6, 5), True),
                                     ("logits_21_161", (1, 1, 21, 21), (161, 161), False)]:
        x = rand(*shape, dtype=torch.float32)
        save(f, "bilinear", name, {"x": x}, F.interpolate(x, size=size, mode="bilinear", align_corners=align),
             {"height": size[0], "width": size[1], "align_corners": int(align)})
    for name, shape, factor in [("factor_0.75", (1, 2, 41, 39), 0.75), ("factor_0.5", (2, 2, 41, 40), 0.5)]:
        x = rand(*shape, dtype=torch.float32)
        save(f, "bilinear_factor", name, {"x": x}, F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False),
             {"factor": factor})
    for name, shape, size in [("up", (1, 2, 5, 7), (12, 15)), ("down", (2, 1, 41, 39), (21, 20)), ("down_161", (1, 1, 161, 161), (21, 21))]:
        x = rand(*shape, dtype=torch.float32)
        save(f, "nearest", name, {"x": x}, F.interpolate(x, size=size, mode="nearest"),
             {"height": size[0], "width": size[1]})


def softmax_loss_cases(f):
    x = rand(2, 5, 3, 4)
    save(f, "softmax", "nchw", {"x": x}, F.softmax(x, dim=1))
    x = rand(2, 5, 3, 4)
    save(f, "log_softmax", "nchw", {"x": x}, F.log_softmax(x, dim=1))
    x = rand(3, 7)
    save(f, "log_softmax", "rows", {"x": x}, F.log_softmax(x, dim=1))
    for name, shape in [("nchw_ignore", (2, 4, 5, 6)), ("rows", (6, 5))]:
        x = rand(*shape)
        labels_shape = (shape[0],) + shape[2:]
        labels = torch.randint(0, shape[1], labels_shape)
        if name.endswith("ignore"):
            labels[torch.rand(labels_shape) < 0.3] = 255
        save(f, "cross_entropy", name, {"x": x, "labels": labels}, F.cross_entropy(x, labels, ignore_index=255))
    x = h16(rand(4, 6) * 3)
    t = (torch.rand(4, 6) < 0.4).double()
    save(f, "multilabel_soft_margin", "basic", {"x": x, "targets": t}, F.multilabel_soft_margin_loss(x, t))


def reduce_shape_cases(f):
    x = rand(2, 3, 4, 5)
    save(f, "sum", "axes_0_2_3", {"x": x}, x.sum(dim=(0, 2, 3), keepdim=True), {"axes": "0,2,3", "keep": 1})
    x = rand(2, 3, 4)
    save(f, "sum", "axis_1", {"x": x}, x.sum(dim=1), {"axes": "1", "keep": 0})
    x = rand(2, 3, 4)
    save(f, "sum", "all", {"x": x}, x.sum(), {"axes": "0,1,2", "keep": 0})
    x = rand(3, 4, 5)
    save(f, "mean", "axis_2", {"x": x}, x.mean(dim=2), {"axes": "2", "keep": 0})
    x = rand(3, 4, 5, half=False)
    save(f, "max", "axis_1", {"x": x}, x.max(dim=1).values, {"axis": 1, "keep": 0})
    x = rand(2, 4, 3, 3, half=False)
    save(f, "max", "axis_1_keep", {"x": x}, x.max(dim=1, keepdim=True).values, {"axis": 1, "keep": 1})
    a, b, c = rand(2, 3, 4), rand(2, 1, 4), rand(2, 2, 4)
    save(f, "concat", "axis_1", {"a": a, "b": b, "c": c}, torch.cat([a, b, c], dim=1), {"axis": 1})
    x = rand(2, 7, 3)
    save(f, "slice", "axis_1", {"x": x}, x[:, 2:5], {"axis": 1, "start": 2, "end": 5})
    x = rand(2, 3, 4, 5)
    save(f, "flip", "axis_3", {"x": x}, torch.flip(x, dims=[3]), {"axis": 3})
    x = rand(2, 3, 4, 5)
    save(f, "flip", "axis_2", {"x": x}, torch.flip(x, dims=[2]), {"axis": 2})


def sgd_cases(f):
    """torch.optim.SGD with momentum 0.9, weight decay 5e-4, two parameter groups (the second at
    2x lr without decay, like DeepLab's biases) and a poly schedule over 5 steps. The gradient of
    step k is a fixed random tensor (loss_k = sum(p * g_k)), so no model is involved."""
    torch.manual_seed(1)
    w = torch.randn(3, 4, dtype=torch.float32).half().double().requires_grad_(True)
    b = torch.randn(3, dtype=torch.float32).half().double().requires_grad_(True)
    g = f.create_group("sgd/poly_two_groups")
    put(g, "w0", w.detach().float().numpy(), input=True)
    put(g, "b0", b.detach().float().numpy(), input=True)
    base_lr, steps, power = 0.1, 5, 0.9
    opt = torch.optim.SGD([{"params": [w], "lr": base_lr, "weight_decay": 5e-4},
                           {"params": [b], "lr": 2 * base_lr, "weight_decay": 0.0}], momentum=0.9)
    for k in range(steps):
        gw = torch.randn(3, 4, dtype=torch.float32).half().double()
        gb = torch.randn(3, dtype=torch.float32).half().double()
        lr = base_lr * (1 - k / steps) ** power
        opt.param_groups[0]["lr"], opt.param_groups[1]["lr"] = lr, 2 * lr
        opt.zero_grad()
        ((w * gw).sum() + (b * gb).sum()).backward()
        opt.step()
        put(g, f"gw{k}", gw.float().numpy(), input=True)
        put(g, f"gb{k}", gb.float().numpy(), input=True)
        put(g, f"w{k + 1}", w.detach().float().numpy())
        put(g, f"b{k + 1}", b.detach().float().numpy())
    g.attrs.update({"base_lr": base_lr, "steps": steps, "power": power, "momentum": 0.9, "weight_decay": 5e-4})


def unary_scalar_cases(f):
    # Last in main() so the random draws of the cases above stay as they were.
    x = rand(2, 3, 4)
    save(f, "neg", "all", {"x": x}, -x)
    x = rand(2, 3, 4)
    save(f, "scalar", "sub", {"x": x}, x - 1.25, {"value": 1.25})
    x = rand(2, 3, 4)
    save(f, "scalar", "div", {"x": x}, x / 0.8, {"value": 0.8})
    x = rand(3, 4, 5, half=False)
    save(f, "max_all", "all", {"x": x}, x.max())


def main():
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with compact_h5.new_file(OUT) as f:
        f.attrs["generator"] = "scripts/make_fixtures.py"
        f.attrs["torch_version"] = str(torch.__version__)
        conv_cases(f)
        batch_norm_cases(f)
        elementwise_cases(f)
        pool_cases(f)
        resize_cases(f)
        softmax_loss_cases(f)
        reduce_shape_cases(f)
        sgd_cases(f)
        unary_scalar_cases(f)
    print(f"wrote {OUT}: {os.path.getsize(OUT) / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
