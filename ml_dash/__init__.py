"""ml-dash: experiment tracking whose logging call costs about a microsecond."""
from ml_dash.client import wiring  # noqa: F401  (gives the pipeline its sink; see docs/architecture.md)
from ml_dash.client.experiment import Experiment
from ml_dash.query import Api
from ml_dash.client.files import FileManager
from ml_dash.client.logs import LogManager
from ml_dash.client.media.manager import MediaManager
from ml_dash.client.media.types import Audio, Histogram, Image, Table, Video
from ml_dash.client.metrics import MetricsLogger
from ml_dash.client.params import ParameterManager
from ml_dash.client.ranks import detect_rank
from ml_dash.client.pipeline.process import use_asyncio_writer

__version__ = "0.1.0"
__all__ = ["Api", "Audio", "Experiment", "FileManager", "Histogram", "Image", "LogManager", "MediaManager",
           "MetricsLogger", "ParameterManager", "Table", "Video", "detect_rank", "use_asyncio_writer", "__version__"]
