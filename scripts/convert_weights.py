#!/usr/bin/env python3
"""Converts weights between PyTorch state_dicts and WSSS HDF5 checkpoints.

  convert_weights.py torchvision IN.pth OUT.h5 [--arch resnet101]
      torchvision ResNet-50/101 (ImageNet) → HDF5 with torchvision names (fc.* dropped); load it
      into a DeepLab or CAM backbone with `--init OUT.h5` (the names already match ours).
  convert_weights.py deeplab IN.pth OUT.h5 [--classes voc|FILE]
      deeplab-pytorch (kazuto1011) DeepLab-v2 weights converted from caffe — the init model
      and the trained VOC model — → HDF5 with our names:
        [base.]layer1.conv1.{conv,bn}            → conv1, bn1
        [base.]layerL.blockB.reduce.{conv,bn}    → layer{L-1}.{B-1}.conv1 / bn1
        ...conv3x3 → conv2/bn2, ...increase → conv3/bn3, ...shortcut.{conv,bn} → downsample.0/.1
        [base.]aspp.cK.{weight,bias}             → aspp.cK.{weight,bias}
      Their BN tensors already carry caffe's scale (the Scale layer folded into weight/bias and
      the moving-average factor divided out by their caffemodel converter), so they are copied
      as they are; num_batches_tracked is added where missing.
  convert_weights.py caffe IN.caffemodel OUT.h5 [--classes voc|FILE]
      The original DeepLab caffemodels (`init.caffemodel`, the COCO-initialised ResNet-101 that
      deeplab-pytorch converts to deeplabv1_resnet101-coco.pth; `train2_iter_20000.caffemodel`)
      → HDF5 with our names, as deeplab-pytorch's convert.py reads them (NetParameter.layer only):
        conv1 → conv1; bn_conv1 + scale_conv1 → bn1
        res{S}{B}_branch2a|2b|2c → layer{S-1}.{b}.conv1|2|3 (B = a, b, c, … or a, b1, b2, …: b = 0, 1, 2, …)
        bn{S}{B}_branch… + scale{S}{B}_branch… → …bn1|2|3; res|bn|scale{S}{B}_branch1 → …downsample.0|1
        fc1_<name>_cK → aspp.cK; other fc* (DeepLab-v1's classifier, an InnerProduct) dropped;
        layers named *res075* / *res05* (the MSC branches' copies of the shared weights) skipped.
      BatchNorm blobs (mean·f, var·f, f) → running_mean, running_var = blob / f (caffe's moving
      average factor; f = 0 gives 0, as caffe does), eps must be 1e-5 as in our BN; the Scale layer
      after it gives weight and bias; num_batches_tracked 0.
  convert_weights.py to-torch IN.h5 OUT.pth
      Our checkpoint → a PyTorch state_dict (torchvision key names, as in the file).
  convert_weights.py self-test [--fixture Tests/Fixtures/converted_deeplab.h5] [--init-fixtures Tests/Fixtures/init]
      Builds small random state_dicts itself, checks the round trips, and writes a converted
      narrow DeepLab-v2 that the Swift tests load (its random values rounded to float16 numbers,
      still stored as float32 as the converter writes them, then rewritten smaller by
      scripts/fixtures/compact_h5.py: gzip + shuffle, which packs those values to about half,
      and small object headers; same names, dtypes and values).
      --init-fixtures DIR also writes the source .pth files next to what this script makes of
      them, for the Swift reader of official .pth initial weights (Checkpoints'
      TorchInitialWeights) to be checked against tensor for tensor:
        torchvision_resnet18.pth / .h5   a 1/64-width ResNet-18 in torchvision's names, with fc.*
                                         and num_batches_tracked, one storage per tensor (as
                                         torch.save writes model.state_dict())
        deeplab_pytorch_r50.pth / .h5    a 1/64-width, 2-class DeepLab-v2 ResNet-50 in
                                         deeplab-pytorch's names (base. prefix, no
                                         num_batches_tracked), its tensors views of one storage
                                         (keeps the file small; exercises storage offsets)
        deeplab_caffe_r50.caffemodel     the same network's tensors in DeepLab's caffe layout
                                         (res4 named b1, b2, … as ResNet-101's; BN blobs times a
                                         moving-average factor of 4, exact in binary; ReLU,
                                         Pooling and res075 layers between): `caffe` converts it to
                                         deeplab_pytorch_r50.h5's tensors, checked here, so that
                                         file is the Swift reader's reference too

Needs torch, h5py, numpy, protobuf (scripts/requirements-fixtures.txt).
"""
import argparse
import collections
import os
import re
import sys

import h5py
import numpy as np
import torch

FORMAT_VERSION = 1
VOC = ["background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
       "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor"]
KAZUTO_PARTS = {"reduce": "1", "conv3x3": "2", "increase": "3"}


def load_state_dict(path):
    obj = torch.load(path, map_location="cpu", weights_only=False)
    if isinstance(obj, dict) and "state_dict" in obj:
        obj = obj["state_dict"]
    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    return collections.OrderedDict((k, v) for k, v in obj.items())


def write_checkpoint(path, tensors, architecture, classes):
    """Our layout: /parameters, /buffers, root attributes. Written to a temporary file, then renamed."""
    tmp = path + ".tmp"
    with h5py.File(tmp, "w") as f:
        for name, value in tensors.items():
            group = "buffers" if re.search(r"(running_mean|running_var|num_batches_tracked)$", name) else "parameters"
            f[f"{group}/{name}"] = np.asarray(value.detach().cpu().numpy() if torch.is_tensor(value) else value, dtype=np.float32)
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["architecture"] = architecture
        f.attrs["classes"] = "\n".join(classes)
        f.attrs["iteration"] = 0
        f.attrs["recipe"] = ""
    os.replace(tmp, path)


def read_checkpoint(path):
    out = collections.OrderedDict()
    with h5py.File(path, "r") as f:
        for group in ("parameters", "buffers"):
            for name in f.get(group, {}):
                value = torch.from_numpy(np.asarray(f[group][name][()]))
                out[name] = value.long() if name.endswith("num_batches_tracked") else value
    return out


def kazuto_to_ours(state):
    out = collections.OrderedDict()
    for key, value in state.items():
        k = key[5:] if key.startswith("base.") else key
        m = re.fullmatch(r"layer1\.conv1\.(conv|bn)\.(.+)", k)
        if m:
            out[("conv1." if m[1] == "conv" else "bn1.") + m[2]] = value
            continue
        m = re.fullmatch(r"layer(\d)\.block(\d+)\.(reduce|conv3x3|increase|shortcut)\.(conv|bn)\.(.+)", k)
        if m:
            layer, block, part, kind, leaf = int(m[1]) - 1, int(m[2]) - 1, m[3], m[4], m[5]
            if part == "shortcut":
                name = f"layer{layer}.{block}.downsample.{0 if kind == 'conv' else 1}.{leaf}"
            else:
                name = f"layer{layer}.{block}.{kind if kind == 'bn' else 'conv'}{KAZUTO_PARTS[part]}.{leaf}"
            out[name] = value
            continue
        m = re.fullmatch(r"aspp\.c(\d)\.(weight|bias)", k)
        if m:
            out[k] = value
            continue
        if k.startswith("fc."):
            continue  # DeepLab-v1's 1x1 classifier (the COCO init, DeepLabV1_ResNet101): no counterpart
        raise SystemExit(f"{key}: not a deeplab-pytorch DeepLab-v2 key")
    for name in [n[: -len("running_mean")] for n in out if n.endswith("running_mean")]:
        out.setdefault(name + "num_batches_tracked", torch.tensor(0))
    return out


def ours_to_kazuto(state):
    """The inverse of kazuto_to_ours (for the self-test)."""
    parts = {v: k for k, v in KAZUTO_PARTS.items()}
    out = collections.OrderedDict()
    for k, v in state.items():
        if k.endswith("num_batches_tracked"):
            continue
        m = re.fullmatch(r"(conv1|bn1)\.(.+)", k)
        if m:
            out[f"base.layer1.conv1.{'conv' if m[1] == 'conv1' else 'bn'}.{m[2]}"] = v
            continue
        m = re.fullmatch(r"layer(\d)\.(\d+)\.downsample\.(\d)\.(.+)", k)
        if m:
            out[f"base.layer{int(m[1]) + 1}.block{int(m[2]) + 1}.shortcut.{'conv' if m[3] == '0' else 'bn'}.{m[4]}"] = v
            continue
        m = re.fullmatch(r"layer(\d)\.(\d+)\.(conv|bn)(\d)\.(.+)", k)
        if m:
            out[f"base.layer{int(m[1]) + 1}.block{int(m[2]) + 1}.{parts[m[4]]}.{m[3]}.{m[5]}"] = v
            continue
        out["base." + k] = v
    return out


def narrow_deeplab_state(classes, divisor=64, seed=0, blocks=(3, 4, 23, 3)):
    """A random DeepLab-v2 ResNet-101 (or, with other `blocks`, -50) state in our names, widths divided by `divisor`."""
    g = torch.Generator().manual_seed(seed)
    stem, planes = 64 // divisor, [p // divisor for p in (64, 128, 256, 512)]
    state = collections.OrderedDict()

    def conv(name, cout, cin, k, bias=False):
        state[name + ".weight"] = torch.randn(cout, cin, k, k, generator=g)
        if bias:
            state[name + ".bias"] = torch.randn(cout, generator=g)

    def bn(name, c):
        state[name + ".weight"] = torch.rand(c, generator=g) + 0.5
        state[name + ".bias"] = torch.randn(c, generator=g)
        state[name + ".running_mean"] = torch.randn(c, generator=g)
        state[name + ".running_var"] = torch.rand(c, generator=g) + 0.5
        state[name + ".num_batches_tracked"] = torch.tensor(0)

    conv("conv1", stem, 3, 7)
    bn("bn1", stem)
    inplanes = stem
    for i, count in enumerate(blocks):
        for b in range(count):
            p, out = planes[i], planes[i] * 4
            conv(f"layer{i + 1}.{b}.conv1", p, inplanes, 1)
            bn(f"layer{i + 1}.{b}.bn1", p)
            conv(f"layer{i + 1}.{b}.conv2", p, p, 3)
            bn(f"layer{i + 1}.{b}.bn2", p)
            conv(f"layer{i + 1}.{b}.conv3", out, p, 1)
            bn(f"layer{i + 1}.{b}.bn3", out)
            if b == 0:
                conv(f"layer{i + 1}.{b}.downsample.0", out, inplanes, 1)
                bn(f"layer{i + 1}.{b}.downsample.1", out)
            inplanes = out
    for k in range(4):
        conv(f"aspp.c{k}", classes, inplanes, 3, bias=True)
    return state


def narrow_torchvision_state(classes, divisor=64, seed=0):
    """A random torchvision ResNet-18 state_dict (basic blocks, fc), widths divided by `divisor`."""
    g = torch.Generator().manual_seed(seed)
    stem, planes = 64 // divisor, [p // divisor for p in (64, 128, 256, 512)]
    state = collections.OrderedDict()

    def conv(name, cout, cin, k):
        state[name + ".weight"] = torch.randn(cout, cin, k, k, generator=g)

    def bn(name, c):
        state[name + ".weight"] = torch.rand(c, generator=g) + 0.5
        state[name + ".bias"] = torch.randn(c, generator=g)
        state[name + ".running_mean"] = torch.randn(c, generator=g)
        state[name + ".running_var"] = torch.rand(c, generator=g) + 0.5
        state[name + ".num_batches_tracked"] = torch.tensor(7)

    conv("conv1", stem, 3, 7)
    bn("bn1", stem)
    inplanes = stem
    for i in range(4):
        for b in range(2):
            p = planes[i]
            conv(f"layer{i + 1}.{b}.conv1", p, inplanes, 3)
            bn(f"layer{i + 1}.{b}.bn1", p)
            conv(f"layer{i + 1}.{b}.conv2", p, p, 3)
            bn(f"layer{i + 1}.{b}.bn2", p)
            if b == 0 and (i > 0 or inplanes != p):
                conv(f"layer{i + 1}.{b}.downsample.0", p, inplanes, 1)
                bn(f"layer{i + 1}.{b}.downsample.1", p)
            inplanes = p
    state["fc.weight"] = torch.randn(classes, inplanes, generator=g)
    state["fc.bias"] = torch.randn(classes, generator=g)
    return state


def halved(state):
    """Values rounded to float16 numbers, kept float32 (the fixtures store them exactly)."""
    return collections.OrderedDict((k, v.half().float() if v.is_floating_point() else v) for k, v in state.items())


def sharing_one_storage(state):
    """The same state_dict with every floating tensor a view of one flat storage."""
    floats = [k for k, v in state.items() if v.is_floating_point()]
    flat = torch.cat([state[k].reshape(-1) for k in floats])
    out, offset = collections.OrderedDict(), 0
    for k, v in state.items():
        if v.is_floating_point():
            out[k] = flat[offset:offset + v.numel()].view(v.shape)
            offset += v.numel()
        else:
            out[k] = v
    return out


def write_init_fixtures(directory):
    """Official-style .pth files and this converter's HDF5 of each (see the module docstring)."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures"))
    import compact_h5

    os.makedirs(directory, exist_ok=True)
    tv = halved(narrow_torchvision_state(classes=5, divisor=64, seed=2))
    torch.save(tv, f"{directory}/torchvision_resnet18.pth")
    convert_torchvision(f"{directory}/torchvision_resnet18.pth", f"{directory}/torchvision_resnet18.h5", "resnet18")
    ours = halved(narrow_deeplab_state(classes=2, divisor=64, seed=3, blocks=(3, 4, 6, 3)))
    kazuto = sharing_one_storage(ours_to_kazuto(ours))
    torch.save(kazuto, f"{directory}/deeplab_pytorch_r50.pth")
    convert_deeplab(f"{directory}/deeplab_pytorch_r50.pth", f"{directory}/deeplab_pytorch_r50.h5", "voc")
    back = read_checkpoint(f"{directory}/deeplab_pytorch_r50.h5")
    assert same(back, ours), "deeplab conversion changed names or values"
    back = read_checkpoint(f"{directory}/torchvision_resnet18.h5")
    assert set(back) == {k for k in tv if not k.startswith("fc.")}
    assert all(torch.equal(back[k].float(), tv[k].float()) for k in back)
    compact_h5.main([f"{directory}/torchvision_resnet18.h5", f"{directory}/deeplab_pytorch_r50.h5"])
    for name in ("torchvision_resnet18", "deeplab_pytorch_r50"):
        for ext in ("pth", "h5"):
            print("wrote", f"{directory}/{name}.{ext}", os.path.getsize(f"{directory}/{name}.{ext}") // 1024, "KiB")
    write_caffe_fixture(directory)


# MARK: Caffe (the original DeepLab caffemodels)

def caffe_messages():
    """The few messages of caffe.proto (BVLC / DeepLab) a caffemodel's weights need, built at run
    time: NetParameter.layer (100), LayerParameter name/type/blobs/batch_norm_param (1, 2, 7, 139),
    BlobProto shape/data/double_data/num/channels/height/width (7, 5, 8, 1-4), BlobShape.dim (1),
    BatchNormParameter eps (3). Every other field is kept unknown and ignored."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    F = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(name="wsss_caffe_subset.proto", package="caffe", syntax="proto2")

    def message(name, fields):
        m = file.message_type.add(name=name)
        for fname, number, ftype, label, type_name, packed in fields:
            f = m.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                f.type_name = ".caffe." + type_name
            if packed:
                f.options.packed = True

    opt, rep = F.LABEL_OPTIONAL, F.LABEL_REPEATED
    message("BlobShape", [("dim", 1, F.TYPE_INT64, rep, None, True)])
    message("BlobProto", [("shape", 7, F.TYPE_MESSAGE, opt, "BlobShape", False),
                          ("data", 5, F.TYPE_FLOAT, rep, None, True),
                          ("double_data", 8, F.TYPE_DOUBLE, rep, None, True),
                          ("num", 1, F.TYPE_INT32, opt, None, False), ("channels", 2, F.TYPE_INT32, opt, None, False),
                          ("height", 3, F.TYPE_INT32, opt, None, False), ("width", 4, F.TYPE_INT32, opt, None, False)])
    message("BatchNormParameter", [("use_global_stats", 1, F.TYPE_BOOL, opt, None, False),
                                   ("moving_average_fraction", 2, F.TYPE_FLOAT, opt, None, False),
                                   ("eps", 3, F.TYPE_FLOAT, opt, None, False)])
    message("LayerParameter", [("name", 1, F.TYPE_STRING, opt, None, False), ("type", 2, F.TYPE_STRING, opt, None, False),
                               ("bottom", 3, F.TYPE_STRING, rep, None, False), ("top", 4, F.TYPE_STRING, rep, None, False),
                               ("blobs", 7, F.TYPE_MESSAGE, rep, "BlobProto", False),
                               ("batch_norm_param", 139, F.TYPE_MESSAGE, opt, "BatchNormParameter", False)])
    message("NetParameter", [("name", 1, F.TYPE_STRING, opt, None, False),
                             ("layer", 100, F.TYPE_MESSAGE, rep, "LayerParameter", False)])
    # caffe.proto's default eps is 1e-5; proto2 defaults live in the descriptor.
    for m in file.message_type:
        if m.name == "BatchNormParameter":
            m.field[2].default_value = "1e-05"
            m.field[1].default_value = "0.999"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return {m.name: message_factory.GetMessageClass(pool.FindMessageTypeByName("caffe." + m.name)) for m in file.message_type}


def caffe_block(stage, block):
    """res{S}{B}: B = a, b, c, … (ResNet-50's stages) or a, b1, b2, … (ResNet-101's) → 0-based index."""
    m = re.fullmatch(r"([a-z])(\d*)", block)
    if not m or (m[2] and m[1] != "b"):
        return None
    return int(m[2]) if m[2] else ord(m[1]) - ord("a")


def caffe_name(layer):
    """Our module name for a caffe layer name ("" = dropped, None = unknown): see the docstring."""
    if layer == "conv1":
        return "conv1"
    if layer in ("bn_conv1", "scale_conv1"):
        return "bn1"
    m = re.fullmatch(r"fc\d*_.*_c(\d)", layer)
    if m:
        return f"aspp.c{m[1]}"
    if layer.startswith("fc"):
        return ""
    m = re.fullmatch(r"(res|bn|scale)(\d)([a-z]\d*)_branch(1|2a|2b|2c)", layer)
    if not m or caffe_block(m[2], m[3]) is None:
        return None
    base = f"layer{int(m[2]) - 1}.{caffe_block(m[2], m[3])}"
    if m[4] == "1":
        return f"{base}.downsample.{0 if m[1] == 'res' else 1}"
    return f"{base}.{'conv' if m[1] == 'res' else 'bn'}{ {'2a': 1, '2b': 2, '2c': 3}[m[4]] }"


def caffe_blob(blob):
    values = np.asarray(blob.double_data if len(blob.double_data) else blob.data, dtype=np.float64)
    shape = list(blob.shape.dim) if blob.HasField("shape") else [d for d in (blob.num, blob.channels, blob.height, blob.width)]
    return values.reshape(shape)


def caffe_to_ours(path):
    net = caffe_messages()["NetParameter"]()
    with open(path, "rb") as f:
        net.ParseFromString(f.read())
    out, previous = collections.OrderedDict(), None
    for layer in net.layer:
        if "res075" in layer.name or "res05" in layer.name or len(layer.blobs) == 0:
            previous = layer
            continue
        name = caffe_name(layer.name)
        if name is None:
            raise SystemExit(f"{path}: layer '{layer.name}' ({layer.type}) is not a DeepLab ResNet layer")
        if name == "":
            previous = layer
            continue
        blobs = [caffe_blob(b) for b in layer.blobs]
        if layer.type == "Convolution":
            out[name + ".weight"] = torch.from_numpy(blobs[0].astype(np.float32))
            if len(blobs) > 1:
                out[name + ".bias"] = torch.from_numpy(blobs[1].reshape(-1).astype(np.float32))
        elif layer.type == "BatchNorm":
            assert np.float32(layer.batch_norm_param.eps) == np.float32(1e-5), f"{layer.name}: eps {layer.batch_norm_param.eps}"
            factor = float(blobs[2].reshape(-1)[0])
            scale = 0.0 if factor == 0 else 1.0 / factor
            out[name + ".running_mean"] = torch.from_numpy((blobs[0].reshape(-1) * scale).astype(np.float32))
            out[name + ".running_var"] = torch.from_numpy((blobs[1].reshape(-1) * scale).astype(np.float32))
            out[name + ".num_batches_tracked"] = torch.tensor(0)
        elif layer.type == "Scale":
            assert previous is not None and previous.type == "BatchNorm" and caffe_name(previous.name) == name, layer.name
            out[name + ".weight"] = torch.from_numpy(blobs[0].reshape(-1).astype(np.float32))
            out[name + ".bias"] = torch.from_numpy(blobs[1].reshape(-1).astype(np.float32))
        else:
            raise SystemExit(f"{path}: layer '{layer.name}' has type {layer.type}")
        previous = layer
    return out


def convert_caffe(src, dst, classes):
    names = VOC if classes == "voc" else [l.strip() for l in open(classes) if l.strip() and not l.startswith("#")]
    state = caffe_to_ours(src)
    head = state.get("aspp.c0.weight")
    if head is not None and head.shape[0] != len(names):
        names = [f"class{i}" for i in range(head.shape[0])]
    write_checkpoint(dst, state, "deeplabv2-resnet101", names)


def write_caffemodel(ours, path, factor=4.0):
    """`ours` (our names) in DeepLab's caffe layout: res4 blocks named a, b1, b2, … (ResNet-101's
    scheme), the other stages a, b, c, …; BN blobs scaled by `factor`; a ReLU, a Pooling and a
    res075 copy of conv1 (with other values: the reader must skip it) between the weights."""
    msgs = caffe_messages()
    net = msgs["NetParameter"](name="DeepLab-test")

    def blob(layer, values):
        b = layer.blobs.add()
        b.shape.dim.extend(values.shape)
        b.data.extend(values.reshape(-1).tolist())

    def conv(cname, module):
        layer = net.layer.add(name=cname, type="Convolution")
        blob(layer, ours[module + ".weight"].numpy())
        if module + ".bias" in ours:
            blob(layer, ours[module + ".bias"].numpy())

    def bn(suffix, module):
        layer = net.layer.add(name="bn" + suffix, type="BatchNorm")
        layer.batch_norm_param.use_global_stats = True
        blob(layer, ours[module + ".running_mean"].numpy() * factor)
        blob(layer, ours[module + ".running_var"].numpy() * factor)
        blob(layer, np.array([factor], dtype=np.float32))
        layer = net.layer.add(name="scale" + suffix, type="Scale")
        blob(layer, ours[module + ".weight"].numpy())
        blob(layer, ours[module + ".bias"].numpy())

    conv("conv1", "conv1")
    bn("_conv1", "bn1")
    net.layer.add(name="conv1_relu", type="ReLU")
    net.layer.add(name="pool1", type="Pooling")
    copy = net.layer.add(name="conv1_res075", type="Convolution")
    blob(copy, ours["conv1.weight"].numpy() + 1)
    stages = sorted({int(k.split(".")[0][5:]) for k in ours if k.startswith("layer")})
    for stage in stages:
        count = 1 + max(int(k.split(".")[1]) for k in ours if k.startswith(f"layer{stage}."))
        for b in range(count):
            letter = "a" if b == 0 else (f"b{b}" if stage == 3 else chr(ord("a") + b))
            unit = f"{stage + 1}{letter}"
            module = f"layer{stage}.{b}"
            if f"{module}.downsample.0.weight" in ours:
                conv(f"res{unit}_branch1", f"{module}.downsample.0")
                bn(f"{unit}_branch1", f"{module}.downsample.1")
            for part, n in (("2a", 1), ("2b", 2), ("2c", 3)):
                conv(f"res{unit}_branch{part}", f"{module}.conv{n}")
                bn(f"{unit}_branch{part}", f"{module}.bn{n}")
                net.layer.add(name=f"res{unit}_branch{part}_relu", type="ReLU")
    for k in range(4):
        if f"aspp.c{k}.weight" in ours:
            conv(f"fc1_voc12_c{k}", f"aspp.c{k}")
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(net.SerializeToString())
    os.replace(tmp, path)


def write_caffe_fixture(directory):
    """deeplab_caffe_r50.caffemodel from deeplab_pytorch_r50.h5's tensors; `caffe` must give them back."""
    ours = read_checkpoint(f"{directory}/deeplab_pytorch_r50.h5")
    path = f"{directory}/deeplab_caffe_r50.caffemodel"
    write_caffemodel(ours, path)
    back = caffe_to_ours(path)
    assert same(back, ours), "caffe conversion changed names or values"
    print("wrote", path, os.path.getsize(path) // 1024, "KiB")


def same(a, b):
    return set(a) == set(b) and all(torch.equal(a[k].float(), b[k].float()) for k in a)


def self_test(fixture, init_fixtures=None):
    import tempfile
    tmp = tempfile.mkdtemp()
    # DeepLab: ours → kazuto names (as deeplab-pytorch saves them) → convert → must equal ours.
    ours = narrow_deeplab_state(classes=21)
    kazuto = ours_to_kazuto(ours)
    assert all(k.startswith("base.layer") or k.startswith("base.aspp") for k in kazuto)
    assert "base.layer4.block23.conv3x3.conv.weight" in kazuto and "base.layer2.block1.shortcut.bn.running_var" in kazuto
    torch.save(kazuto, f"{tmp}/kazuto.pth")
    convert_deeplab(f"{tmp}/kazuto.pth", f"{tmp}/ours.h5", "voc")
    assert same(read_checkpoint(f"{tmp}/ours.h5"), ours), "deeplab conversion changed names or values"
    # Our checkpoint → PyTorch state_dict → back: identical.
    to_torch(f"{tmp}/ours.h5", f"{tmp}/back.pth")
    assert same(load_state_dict(f"{tmp}/back.pth"), ours)
    # torchvision ResNet-50 (random): every key except fc.* kept, values unchanged.
    import torchvision
    tv = torchvision.models.resnet50().state_dict()
    torch.save(tv, f"{tmp}/tv.pth")
    convert_torchvision(f"{tmp}/tv.pth", f"{tmp}/tv.h5", "resnet50")
    back = read_checkpoint(f"{tmp}/tv.h5")
    assert set(back) == {k for k in tv if not k.startswith("fc.")}
    assert all(torch.equal(back[k].float(), tv[k].float()) for k in back)
    # The fixture the Swift tests load: a converted narrow 21-class DeepLab-v2.
    if fixture:
        small = collections.OrderedDict((k, v.half().float() if v.is_floating_point() else v)
                                        for k, v in narrow_deeplab_state(classes=21, divisor=64, seed=1).items())
        torch.save(ours_to_kazuto(small), f"{tmp}/small.pth")
        convert_deeplab(f"{tmp}/small.pth", fixture, "voc")
        assert same(read_checkpoint(fixture), small), "deeplab conversion changed names or values"
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures"))
        import compact_h5

        compact_h5.main([fixture])
        with h5py.File(fixture, "a") as f:
            f.attrs["fixture_note"] = "scripts/convert_weights.py self-test: narrow (1/64) DeepLab-v2 from deeplab-pytorch names"
            f.attrs["checksum_layer3_22_conv2"] = float(small["layer3.22.conv2.weight"].double().sum())
            f.attrs["checksum_aspp_c3_bias"] = float(small["aspp.c3.bias"].double().sum())
        print("wrote", fixture, os.path.getsize(fixture) // 1024, "KiB")
    if init_fixtures:
        write_init_fixtures(init_fixtures)
    print("self-test passed")


def convert_torchvision(src, dst, arch):
    state = collections.OrderedDict((k, v) for k, v in load_state_dict(src).items() if not k.startswith("fc."))
    write_checkpoint(dst, state, arch, [])


def convert_deeplab(src, dst, classes):
    names = VOC if classes == "voc" else [l.strip() for l in open(classes) if l.strip() and not l.startswith("#")]
    state = kazuto_to_ours(load_state_dict(src))
    head = state.get("aspp.c0.weight")
    if head is not None and head.shape[0] != len(names):
        names = names if head.shape[0] == len(names) else [f"class{i}" for i in range(head.shape[0])]
    write_checkpoint(dst, state, "deeplabv2-resnet101", names)


def to_torch(src, dst):
    torch.save(read_checkpoint(src), dst)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("torchvision")
    p.add_argument("src"), p.add_argument("dst"), p.add_argument("--arch", default="resnet101")
    p = sub.add_parser("deeplab")
    p.add_argument("src"), p.add_argument("dst"), p.add_argument("--classes", default="voc")
    p = sub.add_parser("caffe")
    p.add_argument("src"), p.add_argument("dst"), p.add_argument("--classes", default="voc")
    p = sub.add_parser("to-torch")
    p.add_argument("src"), p.add_argument("dst")
    p = sub.add_parser("self-test")
    p.add_argument("--fixture", default=None)
    p.add_argument("--init-fixtures", default=None)
    args = parser.parse_args()
    if args.command == "torchvision":
        convert_torchvision(args.src, args.dst, args.arch)
    elif args.command == "deeplab":
        convert_deeplab(args.src, args.dst, args.classes)
    elif args.command == "caffe":
        convert_caffe(args.src, args.dst, args.classes)
    elif args.command == "to-torch":
        to_torch(args.src, args.dst)
    else:
        self_test(args.fixture, args.init_fixtures)


if __name__ == "__main__":
    sys.exit(main())
