"""DeltaStream's published records, their wire codec and the topic registry."""
from schemas.codec import (MODELS_BY_SCHEMA, SchemaError, decode, decode_dict, encode, encode_dict,
                           headers, model_for, schema_of)
from schemas.records import (ALL_RECORDS, ChainAnalytics, DlqRecord, EnrichedUnderlying, LogRecord,
                             NewsItem, OhlcBar, OptionChain, OptionQuote, Record, UnderlyingTick,
                             VolSurface, VolSurfaceExpiry, chain_key, format_strike, iso_z,
                             option_symbol)
from schemas.topics import TOPICS, TopicSpec, topic_specs

__all__ = [
    "MODELS_BY_SCHEMA", "SchemaError", "decode", "decode_dict", "encode", "encode_dict", "headers",
    "model_for", "schema_of",
    "ALL_RECORDS", "Record", "UnderlyingTick", "OptionQuote", "OptionChain", "ChainAnalytics",
    "OhlcBar", "VolSurface", "VolSurfaceExpiry", "EnrichedUnderlying", "DlqRecord", "LogRecord",
    "NewsItem", "chain_key", "format_strike", "iso_z", "option_symbol",
    "TOPICS", "TopicSpec", "topic_specs",
]
