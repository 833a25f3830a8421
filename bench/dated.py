"""Time in questions: recall@1 of the right-dated answer, with and without the time handling.

A dated corpus of 12 running stories, each reported 4 times on different days with a figure that
changes ("2.5 million people have now fled"), is written to a temporary folder, optionally with
a haystack of undated articles (the BBC folder from ../shared). Five questions per story (60 in
all), each asked on a given "today":

  latest     "How many people have fled Ukraine so far?"              -> the newest report
  on         "... on 6 March 2026?"                                   -> the report of that day
  yesterday  "... according to yesterday's report?" (today = day 1 + 1) -> the first report
  by         "... by 13 March 2026?"                                  -> the newest report by then
  this week  "... this week?" (today = day 3)                         -> the newest report that week

A hit: the first cited excerpt holds that report's figure (and no abstention). The baseline is the
same engine and index reading no time into the questions (no window, no newest-first ordering):
the bench swaps the engine's time parser for one that finds nothing. (Ranking all dates with a
boost for the window's passages instead of filtering was measured here and rejected: bench/README.md.)

    python bench/dated.py [--haystack ../shared/data/bbc-news] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import index.engine  # noqa: E402
from index.config import Settings  # noqa: E402
from index.engine import Engine  # noqa: E402
from index.evaluate import contains_answer  # noqa: E402
from index.search.timeframe import TimeFrame, say_date  # noqa: E402


@dataclass(frozen=True)
class Story:
    slug: str
    source: str
    title: str  # with {n}: the report's number in the series
    ask: str  # the question's stem, without time words
    lead: str  # with {value}: the sentence that carries the day's figure
    values: tuple[str, str, str, str]
    background: str
    quote: str


STORIES = [
    Story("refugees", "UN Wire", "Refugee exodus from Ukraine: update {n}",
          "How many people have fled Ukraine", "The UN refugee agency said on the day that {value} had now fled Ukraine since the invasion began.",
          ("660,000 people", "1.2 million people", "2.5 million people", "3.6 million people"),
          "Most crossed into Poland, with others arriving in Romania, Moldova, Hungary and Slovakia. Border guards reported queues of several kilometres at some crossings.",
          "\"We have not seen a movement of people this fast in Europe for decades,\" a spokeswoman for the agency told reporters in Geneva."),
    Story("wildfire", "Valley Courier", "Sierra Alta wildfire: crews battle the blaze, report {n}",
          "How many hectares has the Sierra Alta wildfire burned", "Fire officials said the Sierra Alta fire had burned {value} of forest and scrubland.",
          ("1,200 hectares", "4,800 hectares", "9,300 hectares", "15,600 hectares"),
          "More than 900 firefighters and eleven water-dropping aircraft are working on the fire lines. Dry winds from the east have pushed the flames towards the reservoir.",
          "\"The terrain is steep and the wind keeps changing direction,\" the county fire chief said at an evening briefing."),
    Story("strike", "Air Transport Daily", "Pilots' strike at Nordair: day-by-day report {n}",
          "How many Nordair flights have been cancelled because of the pilots' strike", "The airline said {value} had been cancelled since the walkout started.",
          ("120 flights", "340 flights", "610 flights", "905 flights"),
          "The pilots' union is demanding a pay rise in line with inflation and limits on rostering. Talks at the mediation service have so far produced no agreement.",
          "\"Passengers should check their booking before travelling to the airport,\" a Nordair spokesman said."),
    Story("count", "Election Desk", "Presidential count in Norrland: results bulletin {n}",
          "What share of the vote has Mara Lindqvist won in the count", "With ballots still being counted, Mara Lindqvist had won {value} of the vote.",
          ("38.2 percent", "41.5 percent", "44.9 percent", "47.3 percent"),
          "Her main rival, the former finance minister Per Odegaard, conceded that a run-off looked likely. Turnout was the highest in twenty years.",
          "\"Every vote will be counted, however long it takes,\" the chair of the electoral commission said."),
    Story("flood", "Danube Herald", "Danube flooding: evacuations widen, update {n}",
          "How many homes have been evacuated in the Danube flooding", "Regional authorities said {value} had been evacuated along the river.",
          ("800 homes", "2,100 homes", "5,400 homes", "7,950 homes"),
          "The river rose above its 2013 record level at several gauges after a week of heavy rain. Army engineers have been reinforcing dykes with sandbags.",
          "\"Residents must leave when told to; the water is still rising,\" the regional governor said."),
    Story("quake", "Coastal Times", "Kestrel Bay earthquake: rescue update {n}",
          "What is the death toll of the Kestrel Bay earthquake", "Emergency services said the number of people killed had risen to {value}.",
          ("45 dead", "112 dead", "198 dead", "263 dead"),
          "The magnitude 6.8 earthquake struck shortly after dawn, flattening older buildings in the harbour district. Rescue teams from four countries are searching the rubble.",
          "\"We are still finding people alive, and we will not stop,\" the head of the civil protection agency said."),
    Story("vaccine", "Health Watch Africa", "Ghana malaria vaccine rollout: progress report {n}",
          "How many children have received the new malaria vaccine in Ghana", "The health ministry said {value} had received a first dose.",
          ("15,000 children", "48,000 children", "96,000 children", "150,000 children"),
          "The vaccine is being offered first in the northern regions, where malaria kills most young children. Health workers travel to villages by motorbike.",
          "\"Parents are queuing before the clinics open,\" a district health officer said."),
    Story("mine", "Mining Gazette", "Halden mine collapse: rescue report {n}",
          "How many miners have been rescued from the Halden mine", "Rescuers said {value} had been brought to the surface alive.",
          ("14 miners", "23 miners", "31 miners", "38 miners"),
          "A tunnel collapsed 600 metres underground during the night shift. Rescuers are using a narrow shaft drilled from the surface to reach the trapped men.",
          "\"Each one who comes up gives us strength to keep going,\" the mine's rescue coordinator said."),
    Story("metro", "City Transit News", "Northline metro: ridership report {n}",
          "How many passengers has the new Northline metro carried", "The transport authority said the line had carried {value} since it opened.",
          ("210,000 passengers", "530,000 passengers", "1.1 million passengers", "1.6 million passengers"),
          "The driverless line links the airport with the central station in 19 minutes. Trains run every three minutes at peak times.",
          "\"Demand has beaten every forecast we made,\" the authority's chief executive said."),
    Story("cholera", "Port Elise Observer", "Cholera outbreak in Port Elise: health bulletin {n}",
          "How many cholera cases have been confirmed in Port Elise", "The health ministry said {value} had been confirmed in the city.",
          ("37 cases", "140 cases", "388 cases", "612 cases"),
          "The outbreak has been traced to a damaged water main in the eastern districts. Water trucks and chlorine tablets are being distributed.",
          "\"Boil all water before drinking it,\" the city's chief medical officer urged residents."),
    Story("appeal", "Riverside Echo", "Riverside hospital appeal: fundraising update {n}",
          "How much has the Riverside children's hospital appeal raised", "Organisers said the appeal had raised {value} so far.",
          ("1.2 million pounds", "2.9 million pounds", "4.4 million pounds", "6.1 million pounds"),
          "The money will pay for a new cancer ward and a garden for young patients. Local businesses have matched many donations.",
          "\"The generosity of this town has been overwhelming,\" the appeal's chair said."),
    Story("oil", "Energy Markets Report", "Oil market report {n}: Brent moves",
          "What price did Brent crude close at", "Brent crude closed at {value} a barrel on the day.",
          ("98.40 dollars", "104.10 dollars", "111.75 dollars", "95.20 dollars"),
          "Traders are watching supply talks between the largest producers and the release of emergency stocks. Refiners say diesel remains in short supply.",
          "\"Volatility like this makes planning very hard,\" an analyst at a London brokerage said."),
]
GAPS = (4, 5, 6)  # days between reports, varied by story
FIRST_DAY = date(2026, 3, 2)
LATEST_TODAY = date(2026, 3, 31)


def report_days(i: int) -> list[date]:
    first = FIRST_DAY + timedelta(days=i % 5)
    days = [first]
    for n in range(3):
        days.append(days[-1] + timedelta(days=GAPS[(i + n) % len(GAPS)]))
    return days


def write_corpus(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, story in enumerate(STORIES):
        for n, (day, value) in enumerate(zip(report_days(i), story.values), 1):
            record = {"title": story.title.format(n=n), "source": story.source, "published": day.isoformat(),
                      "url": f"https://news.example/{story.slug}/{day.isoformat()}",
                      "text": f"{story.lead.format(value=value)}\n\n{story.background}\n\n{story.quote}"}
            (folder / f"{story.slug}-{n}.json").write_text(json.dumps(record), encoding="utf-8")


@dataclass(frozen=True)
class DatedQuestion:
    kind: str
    question: str
    today: date
    answer: str  # the figure of the report that answers it


def questions() -> list[DatedQuestion]:
    out = []
    for i, s in enumerate(STORIES):
        days, v = report_days(i), s.values
        week_today = days[2]
        monday = week_today - timedelta(days=week_today.weekday())
        in_week = [j for j, d in enumerate(days) if monday <= d <= week_today]
        by_day = days[2] + timedelta(days=2)
        out += [
            DatedQuestion("latest", f"{s.ask} so far?", LATEST_TODAY, v[3]),
            DatedQuestion("on", f"{s.ask}, according to the report of {say_date(days[1])}?", LATEST_TODAY, v[1]),
            DatedQuestion("yesterday", f"{s.ask}, according to yesterday's report?", days[0] + timedelta(days=1), v[0]),
            DatedQuestion("by", f"{s.ask} by {say_date(by_day)}?", LATEST_TODAY, v[2]),
            DatedQuestion("this week", f"{s.ask} this week?", week_today, v[max(in_week)]),
        ]
    return out


@contextmanager
def time_blind():
    """The baseline: the engine reads no time words (every question is its own text, no window)."""
    parse = index.engine.parse_timeframe
    index.engine.parse_timeframe = lambda question, *args, **kwargs: (question, TimeFrame())
    try:
        yield
    finally:
        index.engine.parse_timeframe = parse


def evaluate(engine: Engine, items: list[DatedQuestion]) -> dict:
    hits: dict[str, list[int]] = defaultdict(list)
    latency = []
    for q in items:
        began = time.perf_counter()
        answer = engine.ask(q.question, k=5, today=q.today)
        latency.append((time.perf_counter() - began) * 1000)
        hit = bool(answer.citations) and not answer.abstained and contains_answer(answer.citations[0].excerpt, (q.answer,))
        hits[q.kind].append(int(hit))
        hits["all"].append(int(hit))
    latency.sort()
    return {"recall@1": {kind: round(sum(v) / len(v), 3) for kind, v in hits.items()},
            "p50_ms": round(latency[len(latency) // 2], 1)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--haystack", type=Path, help="a folder of (undated) articles to search among, e.g. bbc-news")
    p.add_argument("--data-dir", type=Path, help="where to build the index (default: a temporary folder)")
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = args.data_dir or Path(tmp)
        corpus = base / "corpus"
        write_corpus(corpus / "dated")
        if args.haystack and not (corpus / "haystack").exists():
            os.symlink(args.haystack.resolve(), corpus / "haystack")
        # corpus_links_out: the haystack is a link to the shared articles, outside the corpus folder.
        engine = Engine(Settings.from_env(data_dir=base / "data", corpus_dir=corpus, corpus_links_out=True))
        print(engine.build().summary().splitlines()[0])
        items = questions()
        engine.ask(items[0].question)  # load the models before timing
        result = {"questions": len(items), "haystack": str(args.haystack or ""), "with time": evaluate(engine, items)}
        with time_blind():
            result["without"] = evaluate(engine, items)
    kinds = [k for k in result["with time"]["recall@1"] if k != "all"] + ["all"]
    print(f"\n{len(items)} dated questions over {len(STORIES)} stories x 4 reports"
          + (f" among {args.haystack}" if args.haystack else ""))
    print("| | " + " | ".join(kinds) + " | p50 ms |")
    print("|---|" + "---|" * (len(kinds) + 1))
    for name in ("with time", "without"):
        row = result[name]
        print(f"| {name} | " + " | ".join(f"{row['recall@1'][k]:.3f}" for k in kinds) + f" | {row['p50_ms']} |")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
