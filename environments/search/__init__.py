"""The Search family: ``Search-v0``, Search-R1-style retrieval QA on an embedded index."""

from environments.search.env import SearchEnv, SearchR1Protocol
from environments.search.kb import KnowledgeBase
from environments.search.metrics import exact_match, normalize_answer, token_f1

__all__ = ["KnowledgeBase", "SearchEnv", "SearchR1Protocol", "exact_match", "normalize_answer",
           "token_f1"]
