"""The package's version, and the version of the JSON Schema of its summaries."""
import functools

SCHEMA_VERSION = "1.1.0"


@functools.lru_cache(maxsize=None)
def package_version():
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("pointscore")
    except PackageNotFoundError:
        return "0+unknown"
