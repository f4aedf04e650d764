"""Measuring privacy and quality: detector recall, image quality, re-identification by a face recognizer."""
