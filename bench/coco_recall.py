"""`make recall`: body and vehicle recall of the COCO detectors, as `deid run` runs them (the default sliding tiles).

    python bench/coco_recall.py [--thresholds 0.05,0.1,0.15,0.2,0.25,0.3]

Bodies: the 40 person boxes of ../shared/data/persons, split into the 24 ground-level ones (COCO, CrowdPose,
OCHuman) and the 16 of the Stanford Drone aerial frame. Vehicles: the 33 boxes of bench/data/vehicles.csv, labelled
here by eye on frames of ../shared/data/videos (highway_1080p: every car at least 16 px a side; parking_overhead:
cars seen from above). A box counts as found at IoU 0.3.

The threshold was chosen on the "tune" half (the COCO photos, highway frame 0, parking frames before 200) and is
reported on the "test" half (CrowdPose and OCHuman, highway frame 8, parking frames from 200). False alarms: bodies
on the 20 highway frames and the labelled parking frames (no people in either), vehicles that match no label on
the labelled vehicle frames. yolox-nano always; torchvision's frcnn models only where their weights are cached
(nothing is downloaded).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deidcli.anonymizer import tiled  # noqa: E402
from deidcli.config import DeidConfig  # noqa: E402
from deidcli.detection.coco_torchvision import COCO_MODELS, CocoNet, TorchvisionDetector  # noqa: E402
from deidcli.detection.coco_torchvision import _torch_hub_checkpoints  # noqa: E402
from deidcli.detection.yolo import VEHICLES  # noqa: E402
from deidcli.detection.yolox import YoloxDetector, YoloxNet  # noqa: E402
from deidcli.evaluation.recall import RecallResult, load_boxes, recall_by_image  # noqa: E402
from deidcli.weights import cache_dir  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
PERSONS = DATA / "persons"
VIDEOS = DATA / "videos"
VEHICLE_BOXES = ROOT / "bench" / "data" / "vehicles.csv"
AERIAL = "stanford_drone"
# frames of highway_1080p.mp4 (no people) for false bodies: all 20
HIGHWAY_FRAMES = [f"highway_1080p.mp4#{i}" for i in range(20)]


def tune_half(name: str) -> bool:
    """The half the default threshold was chosen on."""
    if name.startswith("coco_") or name == "highway_1080p.mp4#0":
        return True
    return name.startswith("parking_overhead") and int(name.rpartition("#")[2]) < 200


def summed(results: dict[str, RecallResult], keep) -> RecallResult:
    picked = [r for name, r in results.items() if keep(name)]
    return RecallResult(sum(r.found for r in picked), sum(r.total for r in picked),
                        sum(r.detections for r in picked), sum(r.seconds for r in picked))


def cached(model: str) -> bool:
    name = COCO_MODELS[model].weights.name
    return (cache_dir() / name).is_file() or (_torch_hub_checkpoints() / name).is_file()


def detectors(model: str, threshold: float):
    """Body and vehicle detectors of ``model`` at ``threshold``, one network, tiled as `deid run` tiles them."""
    cfg = DeidConfig()
    if model == "yolox-nano":
        net = YoloxNet(model, max_side=cfg.max_side)
        body = YoloxDetector(model, threshold=threshold, net=net)
        vehicle = YoloxDetector(model, "--vehicle-model", threshold, wanted=VEHICLES, net=net)
    else:
        coco = CocoNet(model, "--body-model")
        body = TorchvisionDetector(model, "--body-model", threshold, net=coco)
        vehicle = TorchvisionDetector(model, "--vehicle-model", threshold, wanted=VEHICLES, net=coco)
    return tiled(body, "body", cfg), tiled(vehicle, "vehicle", cfg)


def line(label: str, r: RecallResult) -> str:
    return f"{label} {r.found}/{r.total}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--thresholds", default="0.05,0.1,0.15,0.2,0.25,0.3")
    args = ap.parse_args()
    if not PERSONS.is_dir() or not VIDEOS.is_dir():
        sys.exit(f"needs {PERSONS} and {VIDEOS}")
    persons = load_boxes(PERSONS / "boxes.csv")
    vehicles = load_boxes(VEHICLE_BOXES)
    none = np.zeros((0, 4), np.float32)
    empty = {name: none for name in HIGHWAY_FRAMES + [n for n in vehicles if n.startswith("parking")]}
    models = ["yolox-nano"] + [m for m in COCO_MODELS if cached(m)]
    skipped = [m for m in COCO_MODELS if m not in models]
    if skipped:
        print(f"not measured (weights not cached, not downloaded): {', '.join(skipped)}")
    for model in models:
        print(f"\n{model}: bodies (ground tune | ground test | aerial), vehicles (tune | test | highway | parking)")
        for threshold in (float(t) for t in args.thresholds.split(",")):
            body, vehicle = detectors(model, threshold)
            b = recall_by_image(body, persons, PERSONS)
            v = recall_by_image(vehicle, vehicles, VIDEOS)
            false_bodies = sum(r.detections for r in recall_by_image(body, empty, VIDEOS).values())
            ground, aerial = (lambda n: AERIAL not in n), (lambda n: AERIAL in n)
            vs = summed(v, lambda n: True)
            print(f"  {threshold:g}: bodies {line('ground', summed(b, ground))} "
                  f"({line('tune', summed(b, tune_half))}, "
                  f"{line('test', summed(b, lambda n: ground(n) and not tune_half(n)))}), "
                  f"{line('aerial', summed(b, aerial))}; {false_bodies} false on {len(empty)} frames | "
                  f"vehicles {vs.found}/{vs.total} ({line('tune', summed(v, tune_half))}, "
                  f"{line('test', summed(v, lambda n: not tune_half(n)))}; "
                  f"{line('highway', summed(v, lambda n: n.startswith('highway')))}, "
                  f"{line('parking', summed(v, lambda n: n.startswith('parking')))}), "
                  f"{vs.detections - vs.found} unmatched")

if __name__ == "__main__":
    main()
