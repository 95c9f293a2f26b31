"""Where a run's row tables go, shard by shard: a file written as the shards arrive
(Parquet, CSV or JSON lines; memory bounded by one shard), or one table kept in memory."""
import json

import pyarrow as pa

from .errors import OutputError
from .outputs import Destination, table_format


def destination_of(path):
    """An output given as a path (written in place) or as a Destination, as a
    Destination (None stays None)."""
    if path is None or isinstance(path, Destination):
        return path
    return Destination(str(path), str(path))


class RowSink:
    """Rows of every shard to ``dest`` (a Destination, in the format its name gives:
    Parquet, CSV or JSON lines), or kept (``keep``) as ``table``."""

    def __init__(self, dest=None, keep=True, name="per_image"):
        self.dest, self.keep = dest, keep
        self.fmt = table_format(name, dest.format_name) if dest is not None else None
        self.file = self.writer = self.schema = None
        self.tables, self.table = [], None

    def write(self, table):
        if table is None:
            return
        if self.dest is None:
            if self.keep:
                self.tables.append(table)
            return
        try:
            self._write(table)
        except OSError as exc:
            raise OutputError(f"{self.dest.label}: cannot write: "
                              f"{getattr(exc, 'strerror', None) or exc}") from None

    def _write(self, table):
        if self.file is None:
            self.file = self.dest.open(binary=True)
            # Later shards may infer narrower types (a column all null): cast to the first.
            self.schema = table.schema
            if self.fmt == "parquet":
                import pyarrow.parquet as pq
                self.writer = pq.ParquetWriter(self.file, table.schema)
            elif self.fmt == "csv":
                import pyarrow.csv as csv
                self.writer = csv.CSVWriter(self.file, table.schema)
        if self.fmt == "jsonl":
            self.file.write("".join(json.dumps(row, allow_nan=False) + "\n"
                                    for row in table.to_pylist()).encode("utf-8"))
        else:
            self.writer.write_table(table.cast(self.schema))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        try:
            if self.writer is not None:
                self.writer.close()
            if self.file is not None:
                self.file.close()
        except OSError as error:
            if exc[0] is None:
                raise OutputError(f"{self.dest.label}: cannot write: "
                                  f"{error.strerror or error}") from None
        if self.tables:
            self.table = pa.concat_tables(self.tables, promote_options="permissive")
        self.tables = []
