"""ml-dash: experiment tracking whose logging call costs about a microsecond."""
from ._aio import use_asyncio_writer
from ._experiment import Experiment
from ._files import FileManager
from ._logs import LogManager
from ._metrics import MetricsLogger
from ._params import ParameterManager

__version__ = "0.1.0"
__all__ = ["Experiment", "FileManager", "LogManager", "MetricsLogger", "ParameterManager", "use_asyncio_writer",
           "__version__"]
