"""citebot's search engine: from a folder of news articles to cited answers. No Telegram here.

    from index import Engine, Settings
    engine = Engine(Settings.from_env())
    engine.build()                      # corpus/ -> index in var/
    answer = engine.ask("How many new battlegroups did NATO agree to deploy?")
"""
from .read.answer import Answer, Citation
from .config import Settings
from .engine import Engine
from .errors import CitebotError, QuestionError
from .search.query import Query

__all__ = ["Answer", "Citation", "CitebotError", "Engine", "Query", "QuestionError", "Settings"]
