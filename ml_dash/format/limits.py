"""Limits that the client and the server both enforce, so that nothing the client accepts is refused later."""
from __future__ import annotations

# A metric row's step: the servers store it in a signed 64-bit SQL integer, so the client refuses the rest at the call.
STEP_MIN, STEP_END = -(2**63), 2**63  # STEP_MIN <= step < STEP_END
MAX_NAME_LENGTH = 256  # a metric name, namespace, workspace, directory segment or prefix, in characters
# Objects/arrays nested inside the *replayed* parameters (the top-level dict counts as one level) and inside a log
# context. orjson.dumps stops at 254 levels, and an answer wraps the parameters in a few levels of its own (GraphQL's
# data/experiments/params): 200 leaves room. ``format.params.contribution_depth`` says what one operation adds.
MAX_NESTING = 200
# Metric names in one metric event (one ``metrics.log`` call) and distinct names in one batch: every new name is a new
# series for the server's single writer, so an unbounded number stalls every other client's ingest.
MAX_METRICS_PER_EVENT = 1000
MAX_METRIC_NAMES_PER_BATCH = 4096
# Tags and notes of one experiment (format.annotations).
MAX_TAGS = 100
MAX_TAG_LENGTH = 256
MAX_NOTES_CHARS = 100_000
# Filters and orders (format.filter), parsed alike by the server (before any query runs) and the local reader.
MAX_FILTER_CHARS = 10_000
MAX_FILTER_DEPTH = 50  # nested parentheses (the parser recurses)
# Each comparison is a (correlated) SQL expression evaluated per experiment: a query's cost grows with their number.
MAX_COMPARISONS = 64
MAX_ORDER_KEYS = 8
# An experiment's readme (rendered to HTML by the server, ~12 µs a character) and its run environment (JSON bytes,
# as encoded): both are stored whole and read by every experiment page.
MAX_README_CHARS = 100_000
MAX_ENVIRONMENT_BYTES = 1_000_000

# exp.alert(title, text, level): a log line whose context holds the title under ALERT_CONTEXT_KEY; the server's client
# rules turn it into a webhook (server/alerts/engine.py, docs/alerts.md).
ALERT_CONTEXT_KEY = "ml_dash.alert"
ALERT_TITLE_MAX = 200

# Media (docs/media.md): what ``exp.media.log`` accepts, the writer writes and the server stores.
MAX_IMAGE_SIDE = 16_384  # pixels along either side of an image or video frame
MAX_IMAGE_PIXELS = 50_000_000  # pixels of one image (height x width), or of all frames of one video together
MAX_HISTOGRAM_BINS = 10_000  # a histogram's bins: a 1e9-bin histogram is refused where it is made
MAX_AUDIO_SAMPLES = 100_000_000  # samples per channel of one clip (about 35 minutes at 48 kHz)
MAX_AUDIO_CHANNELS = 16
MAX_AUDIO_RATE = 768_000
MAX_VIDEO_FRAMES = 100_000
MAX_TABLE_ROWS = 100_000
MAX_TABLE_COLUMNS = 1_000
MAX_CAPTION_CHARS = 4_096
MAX_MEDIA_ITEM_BYTES = 24 << 20  # one encoded item; a bigger one is refused by the writer (an upload body is 32 MiB at most)
MAX_MEDIA_ITEMS_PER_EVENT = 1_000  # items in one ``exp.media.log`` call
THUMBNAIL_SIDE = 256  # the server's thumbnails fit in this square
