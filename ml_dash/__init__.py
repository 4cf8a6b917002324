"""ml-dash: experiment tracking whose logging call costs about a microsecond."""
from ml_dash import _wiring  # noqa: F401  (gives the pipeline its sink; see docs/architecture.md)
from ml_dash._experiment import Experiment
from ml_dash.api import Api
from ml_dash._files import FileManager
from ml_dash._logs import LogManager
from ml_dash._metrics import MetricsLogger
from ml_dash._params import ParameterManager
from ml_dash.pipeline.process import use_asyncio_writer

__version__ = "0.1.0"
__all__ = ["Api", "Experiment", "FileManager", "LogManager", "MetricsLogger", "ParameterManager", "use_asyncio_writer",
           "__version__"]
