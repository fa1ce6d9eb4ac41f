"""The AI analyst service (port 8006, `/ai`): market pulse, news sentiment and
retrieval-augmented answers over the stored analytics, news and notes.

The models (sentence embeddings, sentiment head, optional generator) need the `.[ai]`
extra; without it, or when a model fails to load, the service still starts, answers what it
can (the market pulse has a deterministic template generator) and reports `degraded`.
"""
