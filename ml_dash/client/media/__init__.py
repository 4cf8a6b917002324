"""Media logging: the types (``types``), their caller-side capture (``capture``), the writer's encoders (``encode``)
and segment files (``segments``), and ``exp.media`` (``manager``). docs/media.md."""
