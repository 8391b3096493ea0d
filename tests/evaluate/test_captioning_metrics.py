"""Captioning metrics: BLEU-1..4 and the item names of composed scenes."""

import pytest

from kvision.data.text import SPECIAL_TOKENS, WordPieceVocabulary
from kvision.evaluate.captioning import comparable, item_match
from kvision.evaluate.seq2seq import bleu_scores, corpus_bleu


def test_bleu_orders_are_cumulative_geometric_means():
    references = [["a bag above a top to the left of a coat"]]
    assert bleu_scores(["a bag above a top to the left of a coat"], references) == {
        "bleu_1": pytest.approx(1.0), "bleu_2": pytest.approx(1.0), "bleu_3": pytest.approx(1.0), "bleu_4": pytest.approx(1.0)}
    # The last of eleven words wrong: n-gram precisions 10/11, 9/10, 8/9, 7/8; same length, no brevity penalty.
    scores = bleu_scores(["a bag above a top to the left of a shirt"], references)
    assert scores["bleu_1"] == pytest.approx(10 / 11, abs=1e-6)
    assert scores["bleu_2"] == pytest.approx((10 / 11 * 9 / 10) ** 0.5, abs=1e-6)
    assert scores["bleu_4"] == pytest.approx((10 / 11 * 9 / 10 * 8 / 9 * 7 / 8) ** 0.25, abs=1e-6)
    assert corpus_bleu(["a bag above a top to the left of a shirt"], references) == pytest.approx(scores["bleu_4"] * 100)


def test_bleu_takes_the_best_of_several_references():
    assert bleu_scores(["a dog runs"], [["a cat sits", "a dog runs"]])["bleu_1"] == pytest.approx(1.0)


def test_item_match_counts_placed_items_as_a_multiset():
    references = [["a bag to the left of a bag"], ["an ankle boot above a top"]]
    assert item_match(["a bag to the left of a bag", "an ankle boot above a top"], references) == {
        "item_match": 1.0, "scene_item_match": 1.0}
    assert item_match(["a bag to the left of a coat", "a top above an ankle boot"], references) == {
        "item_match": 0.75, "scene_item_match": 0.5}, "order does not matter; one of two bags named"
    assert item_match(["a bag", "a sandal to the left of a sneaker"], references) == {
        "item_match": 0.25, "scene_item_match": 0.0}


def test_references_are_compared_as_the_vocabulary_writes():
    references = [["A Dog runs.", "a dog"]]
    assert comparable(references, WordPieceVocabulary(SPECIAL_TOKENS + ("a", "dog"), lowercase=True)) == [["a dog runs.", "a dog"]]
    assert comparable(references, WordPieceVocabulary.from_symbols(["A Dog"])) == references
