"""Chunks are whole sentences, fit the model, overlap a little and point back into their document."""
from __future__ import annotations

from index.ingest.chunking import chunk_document, embedding_text
from index.ingest.documents import RawArticle, load_corpus, make_document
from index.ingest.sentences import sentence_spans

from .conftest import SAMPLE_CORPUS


def _long_document():
    sentences = [f"Sentence number {i} tells of event {i} in the long-running story of the harbour." for i in range(60)]
    paragraphs = ["\n".join(sentences[i:i + 4]) for i in range(0, 60, 4)]
    return make_document(RawArticle(title="Harbour story", body="\n\n".join(paragraphs)), "long.txt")


def test_chunks_point_at_their_text_in_the_document():
    for doc in load_corpus(SAMPLE_CORPUS).documents + [_long_document()]:
        for chunk in chunk_document(doc, "en"):
            assert doc.text[chunk.start:chunk.end] == chunk.text
            assert chunk.doc_id == doc.doc_id


def test_chunks_are_whole_sentences_within_the_size_with_overlap():
    doc = _long_document()
    chunks = chunk_document(doc, "en", max_words=60, overlap_words=15)
    assert len(chunks) > 5
    for chunk in chunks:
        assert len(chunk.text.split()) <= 60
        assert chunk.text.startswith("Sentence number") and chunk.text.endswith("harbour.")
    for before, after in zip(chunks, chunks[1:]):
        assert after.start < before.end, "consecutive chunks share a sentence"
        assert after.start > before.start, "every chunk moves forward"


def test_every_chunk_fits_the_model_input(embedder):
    model = embedder.bulk.model
    for doc in load_corpus(SAMPLE_CORPUS).documents + [_long_document()]:
        for chunk in chunk_document(doc, "en"):
            pieces = len(model.tokenizer(embedding_text(doc.title, chunk.text), truncation=False)["input_ids"])
            assert pieces < 0.9 * model.max_seq_length


def test_chunks_carry_their_sentences_as_offsets_into_their_text():
    doc = _long_document()
    for chunk in chunk_document(doc, "en"):
        assert chunk.sentences and chunk.sentences[0][0] == 0 and chunk.sentences[-1][1] == len(chunk.text)
        assert [chunk.text[s:e] for s, e in chunk.sentences] == [chunk.text[s:e] for s, e in sentence_spans(chunk.text)]


def test_a_run_on_sentence_is_cut_at_word_boundaries():
    doc = make_document(RawArticle(title="List", body=" ".join(f"item{i}" for i in range(300))), "list.txt")
    chunks = chunk_document(doc, "en", max_words=100, overlap_words=0)
    assert [len(c.text.split()) for c in chunks] == [100, 100, 100]


def test_a_heading_without_a_stop_is_its_own_sentence():
    text = "Making ready for chemical assault\n\nIn his address, he spoke. Then he left."
    assert [text[s:e] for s, e in sentence_spans(text)] == [
        "Making ready for chemical assault", "In his address, he spoke.", "Then he left."]


def test_sentences_split_at_stops_but_not_at_abbreviations():
    text = "Mr. Smith met Dr. Jones in the U.S. on Monday. Shares rose 3.5% by 2 p.m. on Friday! Why? “We won,” he said."
    assert [text[s:e] for s, e in sentence_spans(text)] == [
        "Mr. Smith met Dr. Jones in the U.S. on Monday.",
        "Shares rose 3.5% by 2 p.m. on Friday!",
        "Why?",
        "“We won,” he said.",
    ]


def test_chunk_size_zero_gives_one_chunk_per_paragraph():
    doc = _long_document()
    chunks = chunk_document(doc, "en", max_words=0)
    assert [c.text for c in chunks] == [doc.text[p.start:p.end] for p in doc.paragraphs]
    assert all(doc.text[c.start:c.end] == c.text for c in chunks)
