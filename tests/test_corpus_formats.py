"""A user drops articles into corpus/ in any accepted format and every one is read."""
from __future__ import annotations

import json
import logging
import os

import pytest

from index.ingest.documents import load_corpus

from .conftest import write_corpus

HTML_PAGE = """<!doctype html><html><head><title>Floods close Danube ports | River News</title>
<meta property="og:site_name" content="River News">
<meta property="og:url" content="https://river.example/floods">
<meta name="date" content="2024-05-02"></head>
<body><nav><a href="/">Home</a> <a href="/world">World</a> <a href="/sport">Sport</a></nav>
<article><h1>Floods close Danube ports</h1>
<p>Heavy rain closed three ports on the Danube on Thursday, the river authority said, after the water
rose by two metres in a single night and barges were ordered to moor downstream.</p>
<p>Shipping companies expect the closures to last at least a week while engineers inspect the quays
and the locks near Vienna and Bratislava.</p></article>
<footer>Subscribe to our newsletter. We use cookies to improve your experience.</footer>
</body></html>"""


def test_each_format_becomes_a_document_with_its_metadata(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", {
        "header.txt": "Title: Port strike ends\nSource: Harbour Times\nURL: https://ht.example/strike\n"
                      "Published: 2024-03-01\n\nDockers returned to work on Monday after a deal on pay.",
        "plain.txt": "Wheat prices fall\n\nWheat futures fell for a third day as rain eased drought fears.",
        "front.md": "---\ntitle: Rail link opens\ndate: March 4, 2024\n---\n\nThe new rail link cut the journey to an hour.",
        "heading.md": "# Bridge reopens\n\nThe old bridge reopened to traffic after two years of repairs.",
        "page.html": HTML_PAGE,
        "one.json": json.dumps({"title": "Mine rescue", "body": "All twelve miners were brought to the surface.",
                                "source": "Wire", "published": "2024-02-10T08:00:00Z"}),
        "many.json": json.dumps([{"title": "A", "text": "First article text about tides."},
                                 {"title": "B", "text": "Second article text about winds."}]),
        "feed.jsonl": json.dumps({"title": "Snow", "text": "Snow closed the mountain pass overnight."}) + "\n"
                      + json.dumps({"title": "Heat", "text": "A heatwave broke records in the south."}) + "\n",
    })
    docs = {d.title: d for d in load_corpus(corpus).documents}

    assert docs["Port strike ends"].source == "Harbour Times"
    assert docs["Port strike ends"].url == "https://ht.example/strike"
    assert docs["Port strike ends"].published == "2024-03-01"
    assert docs["Port strike ends"].text == "Dockers returned to work on Monday after a deal on pay."
    assert docs["Wheat prices fall"].text.startswith("Wheat futures fell")
    assert docs["Rail link opens"].published == "2024-03-04"
    assert docs["Bridge reopens"].text.startswith("The old bridge")
    page = docs["Floods close Danube ports"]
    assert "three ports on the Danube" in page.text and "Bratislava" in page.text
    assert "Home" not in page.text and "cookies" not in page.text.lower()
    assert page.source == "River News" and page.url == "https://river.example/floods"
    assert docs["Mine rescue"].published == "2024-02-10" and docs["Mine rescue"].source == "Wire"
    assert {"A", "B", "Snow", "Heat"} <= set(docs)


def test_unreadable_files_are_skipped_by_name_and_the_rest_is_read(tmp_path, caplog):
    corpus = write_corpus(tmp_path / "corpus", {
        "good.txt": "Good article\n\nThis one is fine and must be indexed.",
        "binary.txt": b"\x89PNG\r\n\x1a\n\x00\x00\x00IHDR",
        "broken.json": "{not json",
        "empty.md": "\n\n   \n",
        "mixed.jsonl": json.dumps({"title": "Kept", "text": "A valid line."}) + "\n{oops\n",
        "notes.csv": "ignored,because,not,an,article",
    })
    with caplog.at_level(logging.WARNING):
        result = load_corpus(corpus)

    assert sorted(d.title for d in result.documents) == ["Good article", "Kept"]
    assert sorted(s.path for s in result.skipped) == ["binary.txt", "broken.json", "empty.md"]
    for name in ("binary.txt", "broken.json", "empty.md", "mixed.jsonl line 2"):
        assert name in caplog.text


def test_latin1_file_is_read(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", {"cafe.txt": "Café prices\n\nA café in Zürich raised prices.".encode("latin-1")})
    (doc,) = load_corpus(corpus).documents
    assert doc.title == "Café prices" and "Zürich" in doc.text


def test_exact_duplicate_documents_are_indexed_once(tmp_path):
    body = "Stocks rose sharply on Tuesday as investors cheered the rate cut.\n\nBanks led the gains."
    corpus = write_corpus(tmp_path / "corpus", {
        "a.txt": f"Title: Markets rally\nSource: Wire A\n\n{body}",
        "b.txt": f"Title: Shares climb after rate cut\nSource: Wire B\n\n{body}",
    })
    result = load_corpus(corpus)
    assert len(result.documents) == 1
    assert result.duplicates[0].path == "b.txt" and "a.txt" in result.duplicates[0].reason


def test_headers_without_titles_and_front_matter_with_other_keys(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", {
        "wire-story.txt": "Source: BBC\nPublished: 2005-03-01\n\nThe lead paragraph says that ministers met on Monday.",
        "blog.md": "---\ntitle: Budget day\nauthor: A. Writer\ntags: [economy]\n---\n\nThe budget raised fuel duty.",
    })
    docs = {d.path: d for d in load_corpus(corpus).documents}
    story = docs["wire-story.txt"]
    assert story.title == "wire-story" and story.source == "BBC"
    assert story.text == "The lead paragraph says that ministers met on Monday.", "the lead is not lost as a title"
    assert docs["blog.md"].title == "Budget day" and docs["blog.md"].text == "The budget raised fuel duty."


def test_hostile_json_is_skipped_without_stopping_the_build(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", {
        "deep.json": "[" * 100000,
        "empty.jsonl": "",
        "textless.json": json.dumps([{"title": "No body"}]),
        "lines.jsonl": json.dumps({"title": "Good", "text": "A good line."}) + "\n"
                       + '{"title": "Huge", "text": "x", "n": ' + "9" * 5000 + "}\n"
                       + json.dumps({"title": {"nested": 1}, "text": "Bad title."}) + "\n",
    })
    result = load_corpus(corpus)
    assert [d.title for d in result.documents] == ["Good"]
    assert sorted(s.path for s in result.skipped) == ["deep.json", "empty.jsonl", "textless.json"]


def test_linked_folders_are_read_once_and_link_loops_do_not_hang(tmp_path):
    from index.ingest.documents import corpus_files

    corpus = write_corpus(tmp_path / "corpus", {"feeds/wire/one.txt": "Title: One\n\nA story from the wire."})
    (corpus / "a-wire").symlink_to(corpus / "feeds" / "wire", target_is_directory=True)
    (corpus / "z-wire").symlink_to(corpus / "feeds" / "wire", target_is_directory=True)
    (corpus / "feeds" / "wire" / "loop").symlink_to(corpus / "feeds", target_is_directory=True)
    (corpus / "linked.txt").symlink_to(corpus / "feeds" / "wire" / "one.txt")
    found = [p.relative_to(corpus).as_posix() for p in corpus_files(corpus)]
    assert found == ["feeds/wire/one.txt", "linked.txt"], "links inside the corpus are followed, each folder once"


@pytest.mark.parametrize("link, target, why", [
    ("passwd.txt", "/etc/passwd", "a link to a file outside the corpus folder"),
    ("notes/secret.md", "{outside}/secret.md", "a link to a file outside the corpus folder"),
    ("elsewhere", "{outside}", "a link to a folder outside the corpus folder (not followed)"),
    ("up.txt", "{corpus}/../secret.md", "a link to a file outside the corpus folder"),
])
def test_a_link_out_of_the_corpus_folder_is_skipped_with_why(tmp_path, link, target, why):
    outside = write_corpus(tmp_path / "secret", {"secret.md": "Title: Secret\n\nThe root password is hunter2."})
    (tmp_path / "secret.md").write_text("Title: Secret\n\nThe root password is hunter2.")
    corpus = write_corpus(tmp_path / "corpus", {"real.txt": "Title: Real\n\nA real article about tides and winds.",
                                                "notes/keep.txt": "Title: Kept\n\nA note about the harbour."})
    target = target.format(outside=outside, corpus=corpus)
    if not os.path.exists(target):
        pytest.skip(f"{target} does not exist here")
    (corpus / link).symlink_to(target, target_is_directory=os.path.isdir(target))
    loaded = load_corpus(corpus)
    assert sorted(d.title for d in loaded.documents) == ["Kept", "Real"]
    assert {s.path: s.reason for s in loaded.skipped} == {link: why}
    assert "root:x:0:0" not in " ".join(d.text for d in loaded.documents)


@pytest.mark.parametrize("given, kept", [
    ("javascript:alert(document.cookie)", ""),
    ("data:text/html,<script>alert(1)</script>", ""),
    ("file:///etc/passwd", ""),
    ("  https://news.example/story  ", "https://news.example/story"),
    ("HTTP://News.example/old", "HTTP://News.example/old"),
])
def test_only_a_web_address_is_kept_as_an_articles_url(tmp_path, given, kept):
    corpus = write_corpus(tmp_path / "corpus", {
        "a.json": json.dumps({"title": "Tides", "text": "The spring tide flooded the promenade.", "url": given}),
        "b.txt": f"Title: Winds\nURL: {given}\n\nGales closed the bridge overnight.",
    })
    assert {d.title: d.url for d in load_corpus(corpus).documents} == {"Tides": kept, "Winds": kept}


def test_a_one_line_text_file_is_an_article_not_a_bare_title(tmp_path):
    from index.ingest.documents import parse_text_article

    article = parse_text_article("The ferry strike at Dover ended on Tuesday after a pay deal.\n")
    assert article.body.strip() == "The ferry strike at Dover ended on Tuesday after a pay deal."
    two = parse_text_article("Ferry strike ends\n\nThe strike at Dover ended on Tuesday.")
    assert two.title == "Ferry strike ends" and "Dover" in two.body


def test_names_that_look_like_articles_but_are_not_files_are_listed_as_skipped(tmp_path):
    import os

    from index.ingest.documents import load_corpus

    corpus = write_corpus(tmp_path / "corpus", {"real.txt": "Title: Real\n\nA real article about tides and winds."})
    os.mkfifo(corpus / "pipe.txt")
    (corpus / "dangling.md").symlink_to(tmp_path / "nowhere.md")
    (corpus / "loop.txt").symlink_to(corpus / "loop.txt")
    (corpus / "folder.txt").mkdir()
    loaded = load_corpus(corpus)  # must not hang on the pipe
    assert [d.title for d in loaded.documents] == ["Real"]
    reasons = {s.path: s.reason for s in loaded.skipped}
    assert reasons["pipe.txt"].startswith("not a regular file")
    assert reasons["dangling.md"] == "a link to nothing"
    assert reasons["loop.txt"] == "a link loop"
    assert reasons["folder.txt"].startswith("a folder named like an article file")


def test_a_bad_record_is_named_once_with_its_file_and_line(tmp_path, caplog):
    import logging

    from index.ingest.documents import load_corpus

    corpus = write_corpus(tmp_path / "corpus", {"feed/items.jsonl": json.dumps({"title": "Good", "text": "Fine."})
                                                + "\n[1, 2]\n" + json.dumps({"title": "Only a title"}) + "\n"})
    with caplog.at_level(logging.WARNING):
        result = load_corpus(corpus)
    assert [d.title for d in result.documents] == ["Good"]
    lines = [r.getMessage() for r in caplog.records if "Skipping" in r.getMessage()]
    assert lines == ['Skipping feed/items.jsonl line 2: not an object with a "text" (a "title" and the rest are optional)',
                     "Skipping feed/items.jsonl line 3: no 'text' or 'body'"]


def test_a_folder_gives_its_articles_a_source_and_a_date_rule(tmp_path):
    """corpus/README.md: a `_source.json` in a folder fills what its articles leave out."""
    corpus = write_corpus(tmp_path / "corpus", {
        "bbc/_source.json": json.dumps({"source": "BBC News", "published": "2004-2005"}),
        "bbc/business/001.txt": "Ad sales boost Time Warner profit\n\nQuarterly profits at US media giant "
                                "TimeWarner jumped 76% to $1.13bn for the three months to December.",
        "bbc/business/002.txt": "Title: Dollar gains\nSource: Reuters\nDate: 2005-01-14\n\n"
                                "The dollar has hit its highest level against the euro in almost three months.",
        "bbc/tech/_source.json": json.dumps({"source": "BBC Technology"}),
        "bbc/tech/001.txt": "Spam convictions\n\nA brother and sister in the US were convicted of spamming AOL.",
        "wire/_source.json": json.dumps({"source": "City Wire", "date_from_name": True}),
        "wire/2022-03-24-summit.txt": "Summit ends\n\nLeaders agreed to send four more battlegroups east.",
        "wire/20220325-talks.txt": "Talks resume\n\nNegotiators met again on Friday near the border.",
        "wire/undated.txt": "Markets calm\n\nMarkets were calm as traders waited for the rate decision.",
    })
    loaded = load_corpus(corpus)
    docs = {d.path: d for d in loaded.documents}
    assert "bbc/_source.json" not in docs and len(docs) == 6 and not loaded.skipped, "folder notes are not articles"
    assert (docs["bbc/business/001.txt"].source, docs["bbc/business/001.txt"].published) == ("BBC News", "2004-2005")
    assert (docs["bbc/business/002.txt"].source, docs["bbc/business/002.txt"].published) == ("Reuters", "2005-01-14"), \
        "an article's own header wins"
    assert (docs["bbc/tech/001.txt"].source, docs["bbc/tech/001.txt"].published) == ("BBC Technology", "2004-2005"), \
        "the nearest folder's setting wins, the rest is inherited"
    assert docs["wire/2022-03-24-summit.txt"].published == "2022-03-24"
    assert docs["wire/20220325-talks.txt"].published == "2022-03-25"
    assert (docs["wire/undated.txt"].source, docs["wire/undated.txt"].published) == ("City Wire", "")


def test_a_broken_folder_note_is_named_and_its_articles_still_read(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", {
        "news/_source.json": "{ source: BBC",
        "news/a.txt": "Wheat prices fall\n\nWheat futures fell for a third day as rain eased drought fears.",
        "other/_source.json": json.dumps({"sauce": "BBC"}),
        "other/b.txt": "Rail link opens\n\nThe new rail link cut the journey to an hour.",
    })
    loaded = load_corpus(corpus)
    assert [d.path for d in loaded.documents] == ["news/a.txt", "other/b.txt"]
    assert [d.source for d in loaded.documents] == ["", ""]
    reasons = {s.path: s.reason for s in loaded.skipped}
    assert "invalid JSON" in reasons["news/_source.json"]
    assert "sauce" in reasons["other/_source.json"] and "source" in reasons["other/_source.json"]


def test_an_article_with_nothing_else_to_cite_is_cited_by_its_file():
    from bot.console import render_text
    from bot.render import render_citation_line
    from index.read.answer import Answer, Citation

    bare = Citation(1, "Quarterly profits jumped 76%.", 1.0, 0.5, "Ad sales boost Time Warner profit", "", "", "",
                    "d", "d:0", 0, 10, path="business/001.txt")
    assert render_citation_line(bare) == "— <i>Ad sales boost Time Warner profit</i> · business/001.txt"
    assert "— Ad sales boost Time Warner profit · business/001.txt" in render_text(Answer("q", False, (bare,), "h"))
    sourced = Citation(1, "x", 1.0, 0.5, "T", "BBC News", "", "", "d", "d:0", 0, 1, path="business/001.txt")
    assert "business/001.txt" not in render_citation_line(sourced), "a source is enough"
    assert bare.to_dict()["path"] == "business/001.txt"


def test_a_bbc_style_article_is_cited_by_its_file_or_its_folders_source(tmp_path, make_engine):
    from bot.console import render_text

    corpus = write_corpus(tmp_path / "corpus", {
        "business/001.txt": "Ad sales boost Time Warner profit\n\nQuarterly profits at US media giant TimeWarner "
                            "jumped 76% to $1.13bn for the three months to December.",
        "tech/_source.json": json.dumps({"source": "BBC News", "published": "2004-2005"}),
        "tech/132.txt": "US duo in first spam conviction\n\nA brother and sister in the US have been convicted "
                        "of sending hundreds of thousands of unsolicited e-mail messages to AOL subscribers.",
    })
    engine = make_engine(corpus)
    profit = engine.ask("How much did Time Warner's quarterly profit rise?").citations[0]
    assert profit.path == "business/001.txt" and profit.to_dict()["path"] == "business/001.txt"
    assert "— Ad sales boost Time Warner profit · business/001.txt" in render_text(
        engine.ask("How much did Time Warner's quarterly profit rise?"))
    spam = engine.ask("Who was convicted of sending spam to AOL subscribers?").citations[0]
    assert (spam.source, spam.published) == ("BBC News", "2004-2005")
