"""Face recognizers: dlib and FaceNet (converted offline from its TensorFlow graph), and M-SVDD on either.

The product uses them (``--consented``, the ``ifgvm`` method, ``deid audit --recognizer``, training
autoencoder-ap); :mod:`deidcli.evaluation` measures methods with them.
"""
