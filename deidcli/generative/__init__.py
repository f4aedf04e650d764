"""Generative de-identification (methods.md sections 2.4, 3 and 4): a frozen face decoder, encoders trained for it,
and the face warping that puts a generated face where the detected one was."""
