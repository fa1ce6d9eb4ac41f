"""DeltaStream's published records, their wire codec and the topic registry."""
from schemas.codec import SchemaError, decode, decode_dict, encode, encode_dict, headers
from schemas.records import (ALL_RECORDS, ChainAnalytics, DlqRecord, EnrichedUnderlying, LogRecord,
                             NewsItem, OhlcBar, OptionChain, OptionQuote, UnderlyingTick, VolSurface,
                             option_symbol)
from schemas.topics import TOPICS, TopicSpec, topic_specs

__all__ = ["SchemaError", "decode", "decode_dict", "encode", "encode_dict", "headers", "ALL_RECORDS",
           "ChainAnalytics", "DlqRecord", "EnrichedUnderlying", "LogRecord", "NewsItem", "OhlcBar",
           "OptionChain", "OptionQuote", "UnderlyingTick", "VolSurface", "option_symbol", "TOPICS",
           "TopicSpec", "topic_specs"]
