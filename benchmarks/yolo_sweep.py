"""Breadth: ultralytics' YOLO models, built from their yaml configs by ultralytics' own model
builder (random weights, nothing downloaded): detection, segmentation, pose, oriented boxes and
classification across YOLOv3 to YOLO26, and RT-DETR. Each is converted as ``aimgen convert
FILE.py:NAME`` does and checked as the other sweeps check: every base state_dict key kept, base
weights in -> the base function out (max abs difference over every output tensor at batch 2, in
eval(), where the heads also decode their boxes), and one training step (train(): the raw
predictions).

    pip install ultralytics                     # not in aimgen's extras
    python benchmarks/yolo_sweep.py             # the list below
    python benchmarks/yolo_sweep.py yolov8n yolo11n_cls ...

One line per model: ``ok`` with taps, the difference and the output's line count, or why not.
"""
from __future__ import annotations

import sys

from sweep import run_table

from aimgen.loader import InputSpec

IMAGE = InputSpec((1, 3, 128, 128))
SMALL = InputSpec((1, 3, 64, 64))

# name: (task model class, yaml, input)
MODELS = {
    "yolov8n": ("DetectionModel", "yolov8n.yaml", IMAGE),
    "yolov8n_seg": ("SegmentationModel", "yolov8n-seg.yaml", IMAGE),
    "yolov8n_pose": ("PoseModel", "yolov8n-pose.yaml", IMAGE),
    "yolov8n_obb": ("OBBModel", "yolov8n-obb.yaml", IMAGE),
    "yolov8n_cls": ("ClassificationModel", "yolov8n-cls.yaml", SMALL),
    "yolo11n": ("DetectionModel", "yolo11n.yaml", IMAGE),
    "yolo11n_seg": ("SegmentationModel", "yolo11n-seg.yaml", IMAGE),
    "yolo11n_pose": ("PoseModel", "yolo11n-pose.yaml", IMAGE),
    "yolo11n_cls": ("ClassificationModel", "yolo11n-cls.yaml", SMALL),
    "yolov5nu": ("DetectionModel", "yolov5nu.yaml", IMAGE),
    "yolov3u_tiny": ("DetectionModel", "yolov3-tinyu.yaml", IMAGE),
    "yolov6n": ("DetectionModel", "yolov6n.yaml", IMAGE),
    "yolov9t": ("DetectionModel", "yolov9t.yaml", IMAGE),
    "yolov10n": ("DetectionModel", "yolov10n.yaml", IMAGE),
    "yolo12n": ("DetectionModel", "yolo12n.yaml", IMAGE),
    "yolo26n": ("DetectionModel", "yolo26n.yaml", IMAGE),
    "rtdetr_l": ("RTDETRDetectionModel", "rtdetr-l.yaml", IMAGE),
}


def main(names: list[str]) -> int:
    classes = sorted({MODELS[n][0] for n in names})
    calls = {n: (f"{cls}({weights!r}, verbose=False)", specs) for n, (cls, weights, specs) in MODELS.items()}
    run_table(f"from ultralytics.nn.tasks import {', '.join(classes)}\n", calls, names, "yolo_models.py")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or list(MODELS)))
