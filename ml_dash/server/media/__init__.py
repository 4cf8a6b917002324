"""Media on the server (docs/media.md): a batch's index entries checked against its payload (``ingest``), thumbnails
made at ingest (``thumbnails``), histograms as a heatmap over steps (``heatmap``)."""
