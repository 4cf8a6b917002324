"""The queue between the logging calls and the sinks: ``core`` (the queue, back-pressure, barriers, fork), ``writer``
(the protocol a writer implements), ``thread`` and ``aio`` (the two writers), ``process`` (this process's pipeline)."""
