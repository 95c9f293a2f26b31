"""Where a run's row tables go, shard by shard: a Parquet file written as the shards
arrive (memory bounded by one shard), or one table kept in memory."""
import pyarrow as pa


class RowSink:
    """Rows of every shard to ``path`` (a Parquet file, written whole or, on an error,
    left for its caller to remove), or kept (``keep``) as ``table``."""

    def __init__(self, path=None, keep=True):
        self.path, self.keep = path, keep
        self.writer, self.tables, self.table = None, [], None

    def write(self, table):
        if table is None:
            return
        if self.path is None:
            if self.keep:
                self.tables.append(table)
            return
        if self.writer is None:
            import pyarrow.parquet as pq
            self.writer = pq.ParquetWriter(self.path, table.schema)
        self.writer.write_table(table.cast(self.writer.schema))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.writer is not None:
            self.writer.close()
        if self.tables:
            self.table = pa.concat_tables(self.tables, promote_options="permissive")
        self.tables = []
