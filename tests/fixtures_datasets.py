"""Writers of tiny copies of the paper's twelve datasets, in their exact distributed formats.

Each ``write_<name>(root)`` lays out files the way the dataset's archive unpacks (real JPEGs via
PIL, real ``.mat`` files via ``scipy.io.savemat`` with the original struct/cell layouts, real
pickles), with a handful of images per class, and returns a :class:`Fixture` saying what a
correct loader must report: split sizes, label names, and the label of every sample id. The
tests compare loaders against these independent descriptions, never against the loaders.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.io import savemat

#: Sizes of fixture images (width, height); differing sizes prove read() decodes the right file.
SIZES = [(13, 11), (17, 9), (10, 16)]


@dataclass
class Fixture:
    """What a loader must find in a fixture root."""

    root: Path
    metric: str
    label_names: list[str]
    #: Expected sizes: ``trainval`` and ``test`` always; ``train``/``val`` for official splits.
    counts: dict[str, int]
    #: Every sample id -> its class name (multi-label: the set of positive class names).
    labels: dict[str, object]
    #: Size of the image behind ``probe_id`` (checked through ``read``).
    probe_id: str = ""
    probe_size: tuple[int, int] = (0, 0)
    #: Sample ids whose files may be deleted to exercise the missing-images path.
    deletable: list[str] = field(default_factory=list)
    #: Folder under ``root`` that sample ids are relative to (the dataset's own folder).
    prefix: str = ""
    #: VOC 2007 only: sample id -> the classes flagged 0 ("difficult").
    difficult: dict[str, set[str]] = field(default_factory=dict)


_JPEG_CACHE: dict[tuple[int, tuple[int, int]], bytes] = {}


def jpeg(path: Path, colour: int = 0, size: tuple[int, int] = (13, 11), mode: str = "RGB") -> None:
    """Write a real JPEG (encoded once per colour/size and reused, to keep fixtures fast)."""
    key = (colour * 2 + (mode == "L"), size)
    if key not in _JPEG_CACHE:
        rgb = np.zeros((size[1], size[0], 3), np.uint8)
        rgb[..., colour % 3] = 200
        rgb[::2, ::2] = 40
        im = Image.fromarray(rgb).convert(mode)
        buf = io.BytesIO()
        im.save(buf, "JPEG")
        _JPEG_CACHE[key] = buf.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_JPEG_CACHE[key])


def _lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines))


# -- Food-101 -----------------------------------------------------------------------------------
def write_food101(root: Path) -> Fixture:
    """``food-101/{images,meta}``; 3 classes x (5 train + 2 test)."""
    base = root / "food-101"
    classes = ["apple_pie", "baby_back_ribs", "waffles"]
    _lines(base / "meta" / "classes.txt", classes)
    _lines(base / "meta" / "labels.txt", ["Apple pie", "Baby back ribs", "Waffles"])
    labels: dict[str, object] = {}
    split_lines: dict[str, list[str]] = {"train": [], "test": []}
    n = 0
    for ci, c in enumerate(classes):
        for split, k in (("train", 5), ("test", 2)):
            for _ in range(k):
                n += 1
                stem = f"{c}/{100000 + n}"
                jpeg(base / "images" / f"{stem}.jpg", ci, SIZES[ci])
                split_lines[split].append(stem)
                labels[f"images/{stem}.jpg"] = c
    for split, ls in split_lines.items():
        _lines(base / "meta" / f"{split}.txt", ls)
    probe = f"images/{split_lines['test'][-1]}.jpg"
    return Fixture(root, "top1", classes, {"trainval": 15, "test": 6}, labels, probe, SIZES[2],
                   [probe, f"images/{split_lines['train'][0]}.jpg"], prefix="food-101")


# -- CIFAR --------------------------------------------------------------------------------------
def _cifar_pixels(labels: list[int]) -> np.ndarray:
    """Rows whose red plane is the label, green the row number, blue 7: checkable after read()."""
    data = np.zeros((len(labels), 3072), np.uint8)
    for i, y in enumerate(labels):
        data[i, :1024] = y
        data[i, 1024:2048] = i
        data[i, 2048:] = 7
    return data


def _pickle(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def write_cifar10(root: Path) -> Fixture:
    """``cifar-10-batches-py/``: 5 train batches of 6 rows, a test batch of 5, batches.meta."""
    base = root / "cifar-10-batches-py"
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
             "truck"]
    rng = np.random.default_rng(3)
    labels: dict[str, object] = {}
    for k in range(1, 6):
        y = rng.integers(0, 10, 6).tolist()
        _pickle(base / f"data_batch_{k}", {b"batch_label": f"training batch {k} of 5".encode(),
                                           b"labels": y, b"data": _cifar_pixels(y),
                                           b"filenames": [f"x_{i}.png".encode() for i in y]})
        labels.update({f"data_batch_{k}:{i}": names[v] for i, v in enumerate(y)})
    y = [0, 1, 2, 3, 9]
    _pickle(base / "test_batch", {b"batch_label": b"testing batch 1 of 1", b"labels": y,
                                  b"data": _cifar_pixels(y), b"filenames": [b"t.png"] * 5})
    labels.update({f"test_batch:{i}": names[v] for i, v in enumerate(y)})
    _pickle(base / "batches.meta", {b"label_names": [n.encode() for n in names],
                                    b"num_cases_per_batch": 6, b"num_vis": 3072})
    return Fixture(root, "top1", names, {"trainval": 30, "test": 5}, labels, "test_batch:4",
                   (32, 32))


def write_cifar100(root: Path) -> Fixture:
    """``cifar-100-python/{train,test,meta}`` with fine and coarse labels (str keys, latin1)."""
    base = root / "cifar-100-python"
    fine = [f"fine_{i:02d}" for i in range(100)]
    fine[:3] = ["apple", "aquarium_fish", "baby"]
    train_y = [0, 1, 2, 0, 1, 2, 0, 1, 2, 99, 99, 99]
    test_y = [2, 1, 0, 99]
    for file, y in (("train", train_y), ("test", test_y)):
        _pickle(base / file, {"filenames": ["f.png"] * len(y), "batch_label": file,
                              "fine_labels": y, "coarse_labels": [v // 5 for v in y],
                              "data": _cifar_pixels(y)})
    _pickle(base / "meta", {"fine_label_names": fine,
                            "coarse_label_names": [f"coarse_{i}" for i in range(20)]})
    labels: dict[str, object] = {f"train:{i}": fine[v] for i, v in enumerate(train_y)}
    labels.update({f"test:{i}": fine[v] for i, v in enumerate(test_y)})
    return Fixture(root, "top1", fine, {"trainval": 12, "test": 4}, labels, "test:3", (32, 32))


# -- Birdsnap -----------------------------------------------------------------------------------
_PARTS = ["back", "beak", "belly", "breast", "crown", "forehead", "left_cheek", "left_eye",
          "left_leg", "left_wing", "nape", "right_cheek", "right_eye", "right_leg", "right_wing",
          "tail", "throat"]


def write_birdsnap(root: Path) -> Fixture:
    """species.txt, images.txt (all 41 columns), test_images.txt, download/images/; 3 species."""
    species = [("Acadian Flycatcher", "Empidonax virescens", "Acadian_Flycatcher"),
               ("Coopers Hawk", "Accipiter cooperii", "Coopers_Hawk"),
               ("Snow Goose", "Chen caerulescens", "Snow_Goose")]
    _lines(root / "species.txt", ["id\tcommon\tscientific\tdir"]
           + [f"{i}\t{c}\t{s}\t{d}" for i, (c, s, d) in enumerate(species, 1)])
    header = ["url", "md5", "path", "species_id", "bb_x1", "bb_y1", "bb_x2", "bb_y2"]
    header += [f"{p}_{a}" for p in _PARTS for a in ("x", "y")]
    rows, tests, labels = [], [], {}
    n = 0
    # images.txt is ordered by species id in the real file; interleave to test the mapping.
    for k in range(6):
        for sid in (3, 1, 2):
            n += 1
            path = f"{species[sid - 1][2]}/{n}.jpg"
            rows.append("\t".join([f"http://farm.example/{n}.jpg", f"{n:032x}", path, str(sid),
                                   "1", "2", "10", "9"] + ["null"] * (2 * len(_PARTS))))
            jpeg(root / "download" / "images" / path, sid, SIZES[sid - 1])
            labels[f"download/images/{path}"] = species[sid - 1][0]
            if k == 5:
                tests.append(path)
    _lines(root / "images.txt", ["\t".join(header), *rows])
    _lines(root / "test_images.txt", ["path", *tests])
    return Fixture(root, "top1", [s[0] for s in species], {"trainval": 15, "test": 3}, labels,
                   f"download/images/{tests[0]}", SIZES[2],
                   [f"download/images/{tests[0]}", "download/images/Snow_Goose/1.jpg"])


# -- SUN397 -------------------------------------------------------------------------------------
def write_sun397(root: Path) -> Fixture:
    """SUN397/ClassName.txt + images, Partitions/{Training,Testing}_01.txt (and _02 decoys)."""
    classes = ["/a/abbey", "/a/apse/indoor", "/b/bakery/shop"]
    _lines(root / "SUN397" / "ClassName.txt", classes)
    labels: dict[str, object] = {}
    parts: dict[str, list[str]] = {"Training": [], "Testing": []}
    n = 0
    for ci, c in enumerate(classes):
        for stem, k in (("Training", 5), ("Testing", 2)):
            for _ in range(k):
                n += 1
                line = f"{c}/sun_{n:016d}.jpg"
                jpeg(root / "SUN397" / line.strip("/"), ci, SIZES[ci])
                parts[stem].append(line)
                labels["SUN397" + line] = c.split("/", 2)[2]
    for stem, ls in parts.items():
        _lines(root / "Partitions" / f"{stem}_01.txt", ls)
        _lines(root / "Partitions" / f"{stem}_02.txt", ls[::-1])
    probe = "SUN397" + parts["Testing"][0]
    return Fixture(root, "top1", ["abbey", "apse/indoor", "bakery/shop"],
                   {"trainval": 15, "test": 6}, labels, probe, SIZES[0],
                   [probe, "SUN397" + parts["Training"][0]])


# -- Stanford Cars ------------------------------------------------------------------------------
def _cars_annotations(rows: list[tuple[str, int]]) -> np.ndarray:
    """A 1 x N MATLAB struct array with the devkit's fields (scalars stored as 1x1 matrices)."""
    dt = [(f, "O") for f in ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname")]
    out = np.zeros((1, len(rows)), dtype=dt)
    for i, (fname, cls) in enumerate(rows):
        out[0, i] = (np.array([[3]], np.uint8), np.array([[4]], np.uint8),
                     np.array([[300]], np.uint16), np.array([[200]], np.uint16),
                     np.array([[cls]], np.uint8), np.array([fname]))
    return out


def write_cars(root: Path) -> Fixture:
    """cars_train/, cars_test/, devkit/{cars_meta,cars_train_annos}.mat, test annos with labels."""
    names = ["AM General Hummer SUV 2000", "Acura RL Sedan 2012", "Audi TTS Coupe 2012"]
    meta = np.empty((1, len(names)), dtype=object)
    meta[0, :] = names
    (root / "devkit").mkdir(parents=True)
    savemat(root / "devkit" / "cars_meta.mat", {"class_names": meta})
    labels: dict[str, object] = {}
    for split, per_class, mat in (("train", 5, "devkit/cars_train_annos.mat"),
                                  ("test", 2, "cars_test_annos_withlabels.mat")):
        rows = []
        for i in range(per_class * len(names)):
            cls = i % len(names) + 1  # 1-based, as in the devkit
            fname = f"{i + 1:05d}.jpg"
            jpeg(root / f"cars_{split}" / fname, cls, SIZES[cls - 1])
            rows.append((fname, cls))
            labels[f"cars_{split}/{fname}"] = names[cls - 1]
        savemat(root / mat, {"annotations": _cars_annotations(rows)})
    return Fixture(root, "top1", names, {"trainval": 15, "test": 6}, labels,
                   "cars_test/00002.jpg", SIZES[1],
                   ["cars_test/00002.jpg", "cars_train/00001.jpg"])


# -- FGVC Aircraft ------------------------------------------------------------------------------
def write_aircraft(root: Path) -> Fixture:
    """fgvc-aircraft-2013b/data/: images, variants.txt, images_variant_{train,val,test}.txt."""
    base = root / "fgvc-aircraft-2013b" / "data"
    variants = ["707-320", "Cessna 525", "F/A-18"]  # spaces and slashes, as in the real list
    _lines(base / "variants.txt", variants)
    labels: dict[str, object] = {}
    n = 1000000
    for split, k in (("train", 3), ("val", 2), ("test", 2)):
        ls = []
        for vi, v in enumerate(variants):
            for _ in range(k):
                n += 7
                jpeg(base / "images" / f"{n}.jpg", vi, SIZES[vi])
                ls.append(f"{n} {v}")
                labels[f"data/images/{n}.jpg"] = v
        _lines(base / f"images_variant_{split}.txt", ls)
        _lines(base / f"images_family_{split}.txt", [f"{x.split()[0]} Boeing 707" for x in ls])
    return Fixture(root, "mean_per_class", variants,
                   {"train": 9, "val": 6, "trainval": 15, "test": 6}, labels,
                   f"data/images/{n}.jpg", SIZES[2],
                   [f"data/images/{n}.jpg", "data/images/1000007.jpg"],
                   prefix="fgvc-aircraft-2013b")


# -- PASCAL VOC 2007 ----------------------------------------------------------------------------
VOC_CLASSES = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
               "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
               "sheep", "sofa", "train", "tvmonitor"]


def write_voc2007(root: Path, sizes: dict[str, int] | None = None) -> Fixture:
    """VOCdevkit/VOC2007/{JPEGImages, ImageSets/Main/<class>_<split>.txt} with 1 / -1 / 0 flags.

    ``sizes`` (images per split, default 4/3/5): larger splits give every class both labels in
    train, which a linear probe's one-vs-rest heads need."""
    base = root / "VOCdevkit" / "VOC2007"
    rng = np.random.default_rng(7)
    labels: dict[str, object] = {}
    difficult: dict[str, set[str]] = {}
    n = 0
    sizes = sizes or {"train": 4, "val": 3, "test": 5}
    for split, k in sizes.items():
        ids = []
        for _ in range(k):
            n += 1
            ids.append(f"{n:06d}")
            jpeg(base / "JPEGImages" / f"{n:06d}.jpg", n, SIZES[n % 3])
        flags = rng.choice([1, -1, -1, 0], size=(k, 20))
        flags[:, 0] = [1] + [-1] * (k - 1)  # every split has an aeroplane and non-aeroplanes
        for ci, c in enumerate(VOC_CLASSES):
            _lines(base / "ImageSets" / "Main" / f"{c}_{split}.txt",
                   [f"{i} {int(f):2d}" for i, f in zip(ids, flags[:, ci], strict=True)])
        _lines(base / "ImageSets" / "Main" / f"{split}.txt", ids)
        for i, row in zip(ids, flags, strict=True):
            sid = f"JPEGImages/{i}.jpg"
            labels[sid] = {VOC_CLASSES[c] for c in np.flatnonzero(row == 1)}
            difficult[sid] = {VOC_CLASSES[c] for c in np.flatnonzero(row == 0)}
    return Fixture(root, "voc11_map", VOC_CLASSES,
                   {**sizes, "trainval": sizes["train"] + sizes["val"]}, labels,
                   f"JPEGImages/{n:06d}.jpg", SIZES[n % 3],
                   [f"JPEGImages/{n:06d}.jpg", "JPEGImages/000001.jpg"], "VOCdevkit/VOC2007",
                   difficult)


# -- DTD ----------------------------------------------------------------------------------------
def write_dtd(root: Path) -> Fixture:
    """dtd/{images/<class>/, labels/{train,val,test}{1,2}.txt}: 3 classes, 2 + 2 + 2 each."""
    base = root / "dtd"
    classes = ["banded", "blotchy", "zigzagged"]
    labels: dict[str, object] = {}
    lists: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    n = 0
    for ci, c in enumerate(classes):
        for split in lists:
            for _ in range(2):
                n += 1
                line = f"{c}/{c}_{n:04d}.jpg"
                jpeg(base / "images" / line, ci, SIZES[ci])
                lists[split].append(line)
                labels[f"images/{line}"] = c
    for split, ls in lists.items():
        _lines(base / "labels" / f"{split}1.txt", ls)
        _lines(base / "labels" / f"{split}2.txt", ls[::-1])  # another partition: must be ignored
    _lines(base / "labels" / "labels_joint_anno.txt", [f"{x} {x.split('/')[0]}" for x in labels])
    return Fixture(root, "top1", classes, {"train": 6, "val": 6, "trainval": 12, "test": 6},
                   labels, f"images/{lists['test'][-1]}", SIZES[2],
                   [f"images/{lists['test'][-1]}", f"images/{lists['val'][0]}"], prefix="dtd")


# -- Oxford-IIIT Pets ---------------------------------------------------------------------------
def write_pets(root: Path) -> Fixture:
    """images/ + annotations/{trainval,test}.txt (``id class species breed``), 3 breeds."""
    breeds = [("Abyssinian", 1), ("american_pit_bull_terrier", 2), ("Egyptian_Mau", 1)]
    names = ["Abyssinian", "American Pit Bull Terrier", "Egyptian Mau"]
    labels: dict[str, object] = {}
    lists: dict[str, list[str]] = {"trainval": [], "test": []}
    for ci, (b, species) in enumerate(breeds):
        for split, k in (("trainval", 5), ("test", 2)):
            for _ in range(k):
                i = len(labels) + 100
                image_id = f"{b}_{i}"
                jpeg(root / "images" / f"{image_id}.jpg", ci, SIZES[ci], "L" if ci == 1 else "RGB")
                lists[split].append(f"{image_id} {ci + 1} {species} {ci + 1}")
                labels[f"images/{image_id}.jpg"] = names[ci]
    for split, ls in lists.items():
        _lines(root / "annotations" / f"{split}.txt", ls)
    probe = "images/american_pit_bull_terrier_112.jpg"  # a greyscale JPEG: read() must give RGB
    return Fixture(root, "mean_per_class", names, {"trainval": 15, "test": 6}, labels, probe,
                   SIZES[1], [probe, "images/Abyssinian_100.jpg"])


# -- Caltech-101 --------------------------------------------------------------------------------
def write_caltech101(root: Path) -> Fixture:
    """101_ObjectCategories/<class>/image_XXXX.jpg for 3 classes (31-33 images), plus the stray
    ``BACKGROUND_Google/tmp`` and a non-image file, which must be ignored."""
    base = root / "101_ObjectCategories"
    classes = {"BACKGROUND_Google": 33, "Faces_easy": 31, "accordion": 32}
    labels: dict[str, object] = {}
    for ci, (c, k) in enumerate(classes.items()):
        for i in range(1, k + 1):
            jpeg(base / c / f"image_{i:04d}.jpg", ci, SIZES[ci])
            labels[f"101_ObjectCategories/{c}/image_{i:04d}.jpg"] = c
    jpeg(base / "BACKGROUND_Google" / "tmp", 0)
    (base / "accordion" / "Thumbs.db").write_bytes(b"\0" * 16)
    return Fixture(root, "mean_per_class", list(classes), {"trainval": 90, "test": 6}, labels,
                   "101_ObjectCategories/accordion/image_0001.jpg", SIZES[2])


# -- Oxford 102 Flowers -------------------------------------------------------------------------
def write_flowers102(root: Path, subdir: str = "") -> Fixture:
    """jpg/image_XXXXX.jpg, imagelabels.mat ('labels' uint8 1 x N), setid.mat (uint16 1 x n)."""
    base = root / subdir if subdir else root
    rng = np.random.default_rng(11)
    n_images, n_classes = 30, 3
    image_labels = np.array([i % n_classes + 1 for i in range(n_images)], np.uint8)
    perm = rng.permutation(n_images) + 1
    setid = {"trnid": perm[:6], "valid": perm[6:12], "tstid": perm[12:]}
    base.mkdir(parents=True, exist_ok=True)
    savemat(base / "imagelabels.mat", {"labels": image_labels[None, :]})
    savemat(base / "setid.mat", {k: v.astype(np.uint16)[None, :] for k, v in setid.items()})
    labels: dict[str, object] = {}
    for i in range(1, n_images + 1):
        cls = int(image_labels[i - 1])
        jpeg(base / "jpg" / f"image_{i:05d}.jpg", cls, SIZES[cls - 1])
        labels[f"jpg/image_{i:05d}.jpg"] = str(cls)
    probe = f"jpg/image_{int(setid['tstid'][0]):05d}.jpg"
    probe_size = SIZES[int(image_labels[setid["tstid"][0] - 1]) - 1]
    return Fixture(root, "mean_per_class", ["1", "2", "3"],
                   {"train": 6, "val": 6, "trainval": 12, "test": 18}, labels, probe, probe_size,
                   [f"jpg/image_{int(i):05d}.jpg"
                    for i in (setid["trnid"][0], setid["tstid"][1], setid["tstid"][2])],
                   prefix=subdir)


WRITERS: dict[str, Callable[[Path], Fixture]] = {
    "food101": write_food101,
    "cifar10": write_cifar10,
    "cifar100": write_cifar100,
    "birdsnap": write_birdsnap,
    "sun397": write_sun397,
    "cars": write_cars,
    "aircraft": write_aircraft,
    "voc2007": write_voc2007,
    "dtd": write_dtd,
    "pets": write_pets,
    "caltech101": write_caltech101,
    "flowers102": write_flowers102,
}
