"""Loaders on real files (the COCO files in tests/data, the CSV format) and every bad-data case."""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from training.data import DataError, EpochSampler, build_dataset, check_data
from training.data.coco import CocoDataset
from training.data.csv_format import CsvDataset
from training.data.synthetic import SyntheticDataset, shape_mask


def test_synthetic_is_deterministic_from_seed_and_differs_between_splits():
    a = SyntheticDataset(6, 96, "train", seed=3)
    b = SyntheticDataset(6, 96, "train", seed=3)
    for i in range(6):
        ia, ta = a[(1, i)]
        ib, tb = b[(1, i)]
        assert torch.equal(ia, ib) and torch.equal(ta["boxes"], tb["boxes"])
    c = SyntheticDataset(6, 96, "train", seed=4)
    v = SyntheticDataset(6, 96, "val", seed=3)
    assert not torch.equal(a[0][0], c[0][0])
    assert not torch.equal(a[0][0], v[0][0])
    assert a.class_names == ["circle", "square", "triangle"]


def test_synthetic_boxes_are_exact_and_shapes_vary():
    ds = SyntheticDataset(40, 128, "val", seed=0)
    sizes, labels = [], []
    for rec in ds.records:
        assert len(rec.labels) >= 1
        for box, label in zip(rec.boxes, rec.labels, strict=True):
            x1, y1, x2, y2 = box
            assert 0 <= x1 < x2 <= 128 and 0 <= y1 < y2 <= 128
            sizes.append(max(x2 - x1, y2 - y1))
            labels.append(label)
    assert set(labels) == {0, 1, 2}
    assert min(sizes) < 25 and max(sizes) > 45
    # A drawn mask fills its box edge to edge: the box is exact to the pixel.
    for cls in range(3):
        m = shape_mask(cls, 31, 27)
        ys, xs = np.nonzero(m)
        assert xs.min() == 0 and xs.max() == 30 and ys.max() == 26


def test_flip_depends_on_seed_epoch_index_and_mirrors_boxes():
    ds = SyntheticDataset(8, 64, "train", seed=0)
    flips = [(e, i) for e in range(2) for i in range(8) if ds.flip(e, i)]
    assert 0 < len(flips) < 16
    epoch, index = flips[0]
    plain = SyntheticDataset(8, 64, "val", seed=0)
    plain.records, plain._layouts, plain.split_code = ds.records, ds._layouts, ds.split_code
    flipped, t_flip = ds[(epoch, index)]
    unflipped, t = plain[index]
    assert torch.equal(flipped, unflipped.flip(-1))
    assert torch.allclose(t_flip["boxes"][:, 0], 64 - t["boxes"][:, 2])


def test_epoch_sampler_skips_the_samples_already_trained(process_group):
    ds = SyntheticDataset(20, 32, "train")
    s = EpochSampler(ds, seed=0)
    s.set_epoch(2)
    full = list(s)
    s.set_epoch(2, start=6)
    assert list(s) == full[6:] and len(s) == 14
    assert all(e == 2 for e, _ in full)
    s.set_epoch(3)
    assert [i for _, i in s] != [i for _, i in full]  # set_epoch changes the order


def _write_blank_images(folder, images):
    folder.mkdir(parents=True, exist_ok=True)
    for info in images:
        Image.new("RGB", (info["width"], info["height"]), (90, 90, 90)).save(
            folder / info["file_name"]
        )


def test_coco_mini_real_images(test_data, process_group):
    root = test_data / "coco-mini"
    ds = CocoDataset(str(root / "gt_dataset.json"), str(root), 128, train=False)
    check_data(ds)
    assert len(ds) == 3 and ds.num_classes == 4
    image, target = ds[0]
    assert image.shape == (3, 128, 128)  # 256x256 resized, aspect kept
    gt = json.loads((root / "gt_dataset.json").read_text())
    first = min(i["id"] for i in gt["images"])
    anns = [a for a in gt["annotations"] if a["image_id"] == first]
    x, y, w, h = anns[0]["bbox"]
    assert target["image_id"] == first
    assert torch.allclose(target["boxes"][0], torch.tensor([x, y, x + w, y + h]) / 2, atol=1e-4)


def test_coco_val2014_gapped_ids_crowd_and_blank_images(test_data, tmp_path, process_group):
    ann = test_data / "coco-val2014-100" / "instances_val2014_100.json"
    gt = json.loads(ann.read_text())
    _write_blank_images(tmp_path / "images", gt["images"])
    ds = CocoDataset(str(ann), str(tmp_path / "images"), 160, train=True)
    check_data(ds)
    assert len(ds) == 100 and ds.num_classes == 80
    # Category ids 1..90 with gaps map to labels 0..79 and back.
    assert ds.category_ids == sorted(c["id"] for c in gt["categories"])
    assert ds.category_ids[-1] == 90 and ds.category_ids[11] == 13
    crowd = sum(a["iscrowd"] for a in gt["annotations"])
    assert crowd > 0 and ds.counts["crowd"] == crowd
    assert sum(len(r.labels) for r in ds.records) == len(gt["annotations"]) - crowd
    image, target = ds[(0, 0)]
    assert max(image.shape[1:]) == 160
    # Evaluation sees the crowd regions (COCOeval ignores detections on them).
    assert ds.coco_gt() is not None and len(ds.coco_gt()["annotations"]) == len(gt["annotations"])


def test_coco_keeps_empty_images_and_drops_degenerate_boxes(test_data, tmp_path, process_group):
    gt = json.loads((test_data / "coco-mini" / "gt_dataset.json").read_text())
    gt["images"].append({"id": 99, "width": 50, "height": 40, "file_name": "empty.jpg"})
    gt["annotations"].append(
        {"id": 999, "image_id": 99, "category_id": 1, "bbox": [10, 10, 0, 5], "iscrowd": 0}
    )
    ann = tmp_path / "gt.json"
    ann.write_text(json.dumps(gt))
    for f in (test_data / "coco-mini").glob("*.jpg"):
        shutil.copy(f, tmp_path)
    Image.new("RGB", (50, 40)).save(tmp_path / "empty.jpg")
    ds = CocoDataset(str(ann), str(tmp_path), 64, train=True)
    check_data(ds)
    assert len(ds) == 4
    assert ds.counts == {"crowd": 0, "degenerate": 1, "empty_images": 1}
    assert "1 degenerate boxes dropped, 1 images without boxes kept" in ds.describe()
    _image, target = ds[3]
    assert target["boxes"].shape == (0, 4)


def _csv_data(tmp_path, rows, classes="cat,0\ndog,1\n", sizes=None):
    for name, size in (sizes or {"a.png": (64, 48), "b.jpg": (40, 40)}).items():
        Image.new("RGB", size, (10, 20, 30)).save(tmp_path / name)
    (tmp_path / "classes.csv").write_text(classes)
    (tmp_path / "train.csv").write_text(rows)
    return str(tmp_path / "train.csv"), str(tmp_path / "classes.csv")


def test_csv_format_with_floats_and_empty_images(tmp_path, process_group):
    rows = "a.png,1.5,2,30.25,40,dog\na.png,0,0,10,10,cat\nb.jpg,,,,,\n"
    ds = CsvDataset(*_csv_data(tmp_path, rows), image_size=64, train=False)
    check_data(ds)
    assert ds.class_names == ["cat", "dog"] and len(ds) == 2
    _, target = ds[0]
    assert target["labels"].tolist() == [1, 0]
    assert torch.allclose(target["boxes"][0], torch.tensor([1.5, 2, 30.25, 40]))
    _, empty = ds[1]
    assert empty["boxes"].shape == (0, 4)
    gt = ds.coco_gt()
    assert {i["width"] for i in gt["images"]} == {64, 40}


def _problems(tmp_path, rows, **kw) -> str:
    ds = CsvDataset(*_csv_data(tmp_path, rows, **kw), image_size=64, train=True)
    with pytest.raises(DataError) as err:
        check_data(ds)
    return str(err.value)


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ("a.png,1,2,3,dog\n", "train.csv:1: expected 6 fields path,x1,y1,x2,y2,class_name, got 5"),
        ("a.png,1,2,x,4,dog\n", "train.csv:1: coordinates 1,2,x,4 are not numbers"),
        ("a.png,0,0,5,5,cat\na.png,9,2,3,4,dog\n", "train.csv:2: x2 must exceed x1"),
        ("a.png,1,2,,4,dog\n", "train.csv:1: some of x1,y1,x2,y2,class_name are empty"),
        (
            "a.png,1,2,3,4,bird\n",
            "train.csv:1: unknown class 'bird' (classes file lists: cat, dog)",
        ),
        ("a.png,0,0,70,40,dog\n", "train.csv:1: box (0.0, 0.0, 70.0, 40.0) lies outside the image"),
        ("missing.png,0,0,5,5,dog\n", "missing.png: missing file"),
    ],
)
def test_csv_bad_data_names_file_line_and_why(tmp_path, process_group, rows, expected):
    assert expected in _problems(tmp_path, rows)


def test_unreadable_image_and_bad_classes_file(tmp_path, process_group):
    (tmp_path / "junk.png").write_bytes(b"this is not an image")
    msg = _problems(tmp_path, "junk.png,0,0,5,5,cat\n", classes="cat,0\ncat,1\ndog,x\n")
    assert "junk.png: unreadable image" in msg
    assert "classes.csv:2: duplicate class name 'cat'" in msg
    assert "classes.csv:3: class id 'x' is not an integer" in msg
    assert msg.startswith("bad data (3 problem(s))")


def test_missing_annotation_files_are_reported(tmp_path, process_group):
    args = SimpleNamespace(
        dataset="coco",
        train_ann=str(tmp_path / "nope.json"),
        train_images=str(tmp_path),
        image_size=64,
        seed=0,
    )
    with pytest.raises(DataError, match="nope.json: missing file"):
        check_data(build_dataset(args, "train"))
    args = SimpleNamespace(dataset="csv", val_csv=None, classes_csv="c.csv", image_size=64, seed=0)
    with pytest.raises(DataError, match="--dataset csv needs --val-csv"):
        build_dataset(args, "val")


def test_coco_box_outside_image_and_unknown_category(test_data, tmp_path, process_group):
    gt = json.loads((test_data / "coco-mini" / "gt_dataset.json").read_text())
    gt["annotations"][0]["bbox"] = [200, 200, 100, 10]
    gt["annotations"][1]["category_id"] = 77
    ann = tmp_path / "gt.json"
    ann.write_text(json.dumps(gt))
    ds = CocoDataset(str(ann), str(tmp_path), 64, train=True)  # no images there either
    with pytest.raises(DataError) as err:
        check_data(ds)
    msg = str(err.value)
    assert "lies outside the image (256x256)" in msg
    assert "unknown class id 77" in msg
    assert "img_1.jpg: missing file" in msg


def _python_objects_reachable(root) -> int:
    """Objects the garbage collector tracks (lists, dicts, dataclass instances...) reachable
    from `root`: what a forked worker copies page by page when it touches them."""
    import gc
    import types

    seen, stack = set(), [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, type | types.ModuleType | types.FunctionType):
            continue
        seen.add(id(obj))
        stack.extend(r for r in gc.get_referents(obj) if gc.is_tracked(r))
    return len(seen)


def _coco_file(path, n: int) -> str:
    images = [{"id": i, "file_name": f"{i}.jpg", "width": 64, "height": 48} for i in range(1, n)]
    anns = [
        {"id": i, "image_id": i, "category_id": 1 + i % 2, "bbox": [1, 2, 10, 20], "iscrowd": 0}
        for i in range(1, n)
    ]
    cats = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return str(path)


def test_coco_records_are_numpy_arrays_not_python_objects_per_image(tmp_path):
    """pytorch#13246: the per-image records must not be Python objects that every loader
    worker copies; the objects reachable from the dataset do not grow with its size."""
    small = CocoDataset(_coco_file(tmp_path / "s.json", 10), str(tmp_path), 64, train=True)
    large = CocoDataset(_coco_file(tmp_path / "l.json", 400), str(tmp_path), 64, train=True)
    assert len(small) == 9 and len(large) == 399
    assert _python_objects_reachable(large) == _python_objects_reachable(small)
    assert all(
        isinstance(v, np.ndarray) and v.dtype != object for v in vars(large.records).values()
    )
    rec = large.records[-1]
    assert (rec.image_id, rec.path, rec.width, rec.height) == (
        399,
        str(tmp_path / "399.jpg"),
        64,
        48,
    )
    assert rec.boxes.tolist() == [[1, 2, 11, 22]] and rec.labels.tolist() == [1]
    rec.boxes[0, 0] = 99  # a Record is a copy: the table is unchanged
    assert large.records[-1].boxes[0, 0] == 1
    assert [r.image_id for r in large.records] == list(range(1, 400))
