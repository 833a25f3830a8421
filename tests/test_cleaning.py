"""Scraped text comes out clean: no junk lines, no repeats, one language, proper paragraphs."""
from __future__ import annotations

from index.ingest.chunking import chunk_document
from index.ingest.cleaning import clean_paragraphs, normalize_text
from index.ingest.documents import RawArticle, load_corpus, make_document

from .conftest import SAMPLE_CORPUS


def test_comment_form_junk_is_removed_from_the_sample_article():
    docs = {d.path: d for d in load_corpus(SAMPLE_CORPUS).documents}
    text = docs["nato-summit-al-jazeera.txt"].text
    assert "Please enter your comment" not in text
    assert "Please enter your name here" not in text
    assert text.rstrip().endswith("getting ready for this unthinkable situation.”")


def test_share_cookie_and_subscribe_lines_are_removed_but_articles_about_them_are_not():
    body = "\n".join([
        "Share this article",
        "Share on Facebook",
        "Follow us on Twitter",
        "We use cookies to give you the best experience.",
        "Accept all cookies",
        "Subscribe to our newsletter for daily updates",
        "Advertisement",
        "Read more: Ten things about ports",
        "Regulators said websites that use cookies to track users must ask for consent first, a rule "
        "that the industry says will cost billions to implement across Europe over the next two years.",
    ])
    kept = clean_paragraphs(body)
    assert len(kept) == 1 and kept[0].startswith("Regulators said websites that use cookies")


def test_repeated_lines_are_kept_once():
    body = "The minister resigned.\nHe denied wrongdoing.\nThe minister resigned.\nAn inquiry continues."
    assert clean_paragraphs(body) == ["The minister resigned.", "He denied wrongdoing.", "An inquiry continues."]


def test_unicode_and_whitespace_are_normalised():
    text = normalize_text("Prices\u00a0rose\u200b 5\u00ad% in\u3000Tokyo\r\nﬁnance   news\x07")
    assert text == "Prices rose 5% in Tokyo\nfinance news"


def test_hard_wrapped_lines_are_joined_and_one_line_entries_kept_apart():
    wrapped = ("The central bank raised interest rates by half a point on Thursday, its\n"
               "biggest increase in two decades, as inflation climbed to a forty year high\n"
               "and the currency weakened.\n\nShort second paragraph.")
    assert clean_paragraphs(wrapped) == [
        "The central bank raised interest rates by half a point on Thursday, its biggest increase in two "
        "decades, as inflation climbed to a forty year high and the currency weakened.",
        "Short second paragraph.",
    ]
    live = "Nato agrees to strengthen eastern defences\nLeaders agreed to strengthen defences in the east.\n"
    assert clean_paragraphs(live) == ["Nato agrees to strengthen eastern defences",
                                      "Leaders agreed to strengthen defences in the east."]


def test_the_albanian_line_is_marked_foreign_and_never_searched():
    docs = {d.path: d for d in load_corpus(SAMPLE_CORPUS).documents}
    blog = docs["nato-summit-live-blog.txt"]
    foreign = [blog.text[p.start:p.end] for p in blog.paragraphs if p.language and p.language != "en"]
    assert foreign == ["NATO premton më shumë furnizime ushtarake dhe mbështetje kibernetike për Ukrainën./ The Geopost"]
    chunks = chunk_document(blog, "en")
    assert chunks and not any("premton" in c.text for c in chunks)


def test_html_in_article_text_is_kept_as_text():
    doc = make_document(RawArticle(title="Tags <b>bold</b>", body="Use <script>alert(1)</script> & <b>care</b>."), "x.txt")
    assert doc.title == "Tags <b>bold</b>"
    assert doc.text == "Use <script>alert(1)</script> & <b>care</b>."
