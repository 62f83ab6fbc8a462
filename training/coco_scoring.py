"""COCO scoring with pycocotools, below both the training loop (engine.py) and the
evaluation CLI (evaluate.py), which import it and not each other.

    stats = coco_stats(gt_dict_or_COCO, detections)  # the twelve COCO bbox numbers
"""

from __future__ import annotations

import contextlib
import io


def coco_stats(gt, detections, keep_eval: bool = False):
    """The twelve COCO bbox numbers; `detections` is a list of result dicts or a file path.

    With keep_eval, returns (numbers, COCOeval or None) for the precision-recall table.
    """
    import numpy as np  # noqa: F401 - pycocotools needs it; imported here to keep --help fast
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if isinstance(detections, list) and not detections:
        # pycocotools cannot load an empty result list
        return ([0.0] * 12, None) if keep_eval else [0.0] * 12
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        if isinstance(gt, dict):
            coco_gt = COCO()
            coco_gt.dataset = gt
            coco_gt.createIndex()
        else:
            coco_gt = gt
        ev = COCOeval(coco_gt, coco_gt.loadRes(detections), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    stats = [float(x) for x in ev.stats]
    return (stats, ev) if keep_eval else stats
