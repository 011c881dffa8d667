"""Funnel datasets: synthetic funnels with an oracle, Ali-CCP, census and generic tables.

Every loader returns ``FunnelSplits`` (train / valid / test ``FunnelData``) whose id matrices
are memory-mapped from a cache; ``BatchLoader`` turns a split into device mini-batches.

Three layers: core types (``schema``, ``errors``, ``vocabulary``, ``bucketing``, ``batching``);
ingestion, from files to cached splits (``reading``, ``encoding``, ``pipeline``, ``cache``,
``spool``, ``splitting``, ``fingerprint``, ``scoring``, ``checks``); and the dataset sources
built on both (``sources/``).
"""

from apem.data.batching import Batch, BatchLoader
from apem.data.bucketing import log_round
from apem.data.errors import DataError
from apem.data.schema import FunnelData, FunnelSplits, Schema
from apem.data.scoring import EncodedTable, encode_table
from apem.data.sources import load_source
from apem.data.sources.aliccp import load_aliccp
from apem.data.sources.census import load_census_funnel, load_census_pair
from apem.data.sources.synthetic import make_funnel, synthetic_splits
from apem.data.sources.table import load_table
from apem.data.sources.tianchi import convert_tianchi
from apem.data.vocabulary import Vocabulary

__all__ = [
    "Batch",
    "BatchLoader",
    "DataError",
    "EncodedTable",
    "FunnelData",
    "FunnelSplits",
    "Schema",
    "Vocabulary",
    "convert_tianchi",
    "encode_table",
    "load_aliccp",
    "load_census_funnel",
    "load_census_pair",
    "load_source",
    "load_table",
    "log_round",
    "make_funnel",
    "synthetic_splits",
]
