"""A small in-memory search engine for Argilla's server, for tests only.

Argilla's server keeps records in its SQL database and asks a search engine (Elasticsearch or
OpenSearch) which records match a query, a filter or a vector. Neither can be installed on the
course's CI machines, so this module stands in for them: it keeps one dictionary per dataset in
the server process's memory and answers the same questions by looping over it.

What it is not: a search engine. Text queries match when every word of the query appears in the
field (no ranking, no stemming); records come back in the order they were first indexed; the
similarity search is an exact cosine similarity over every record. Tests must check that data
round-trips (records, suggestions, responses, filters by status), never the ranking.

The index lives at module level because the server opens a new engine object per request; so
it lasts as long as the server process, and only one server process may use it. Restarting the
server on an existing database leaves the index empty: the launcher always starts from a fresh
data folder.

Register it under ENGINE_NAME before the app is imported, and select it with
ARGILLA_SEARCH_ENGINE=memory (launcher.py does both).
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any, Iterable, Optional, Union
from uuid import UUID

from argilla_server.enums import ResponseStatusFilter, SimilarityOrder, SortOrder
from argilla_server.models import Dataset, MetadataProperty, Record, Response, Suggestion, User, VectorSettings
from argilla_server.search_engine.base import (
    AndFilter,
    FloatMetadataMetrics,
    IntegerMetadataMetrics,
    MetadataFilterScope,
    MetadataMetrics,
    RangeFilter,
    RecordFilterScope,
    ResponseFilterScope,
    SearchEngine,
    SearchResponseItem,
    SearchResponses,
    SuggestionFilterScope,
    TermsFilter,
    TermsMetrics,
    TextQuery,
)

ENGINE_NAME = "memory"

# dataset id -> record id -> the record as plain Python data (see _as_document).
_INDEX: dict[UUID, dict[UUID, dict[str, Any]]] = {}

_WORD = re.compile(r"\w+", re.UNICODE)


def _enum_value(value: Any) -> Any:
    return getattr(value, "value", value)


def _response_document(response: Response) -> dict[str, Any]:
    values = {question: (answer or {}).get("value") for question, answer in (response.values or {}).items()}
    return {"status": str(_enum_value(response.status)), "user_id": str(response.user_id), "values": values}


def _suggestion_document(suggestion: Suggestion) -> dict[str, Any]:
    return {"value": suggestion.value, "score": suggestion.score, "agent": suggestion.agent,
            "type": _enum_value(suggestion.type)}


def _as_document(record: Record) -> dict[str, Any]:
    """What the engine keeps of a record: plain data, detached from the database session."""
    known_metadata = {prop.name for prop in record.dataset.metadata_properties}
    return {
        "id": str(record.id),
        "external_id": record.external_id,
        "fields": dict(record.fields or {}),
        "status": str(_enum_value(record.status)),
        "inserted_at": record.inserted_at,
        "updated_at": record.updated_at,
        "metadata": {k: v for k, v in (record.metadata_ or {}).items() if k in known_metadata and v is not None},
        "responses": {str(r.id): _response_document(r) for r in record.responses or []},
        "suggestions": {s.question.name: _suggestion_document(s) for s in record.suggestions or []},
        "vectors": {str(v.vector_settings_id): list(v.value) for v in record.vectors or []},
    }


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def _comparable(value: Any) -> Any:
    """Numbers as floats, dates as timestamps, anything else unchanged (for ranges and sorting)."""
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    return value


def _in_range(value: Any, ge: Optional[float], le: Optional[float]) -> bool:
    value = _comparable(value)
    if not isinstance(value, float):
        return False
    return (ge is None or value >= ge) and (le is None or value <= le)


def _matches_terms(value: Any, wanted: Iterable[str]) -> bool:
    wanted = {str(w) for w in wanted}
    return value is not None and any(str(v) in wanted for v in _as_list(value))


def _responses_of(doc: dict, user: Optional[User]) -> list[dict]:
    responses = doc["responses"].values()
    return [r for r in responses if user is None or r["user_id"] == str(user.id)]


def _scope_values(doc: dict, scope: Any) -> list:
    """The values a filter or sort scope points to in one record (an empty list when absent)."""
    if isinstance(scope, MetadataFilterScope):
        value = doc["metadata"].get(scope.metadata_property)
    elif isinstance(scope, SuggestionFilterScope):
        value = doc["suggestions"].get(scope.question, {}).get(scope.property)
    elif isinstance(scope, RecordFilterScope):
        value = doc.get(scope.property)
    elif isinstance(scope, ResponseFilterScope):
        responses = _responses_of(doc, scope.user)
        if scope.question:
            return [v for r in responses for v in _as_list(r["values"].get(scope.question)) if v is not None]
        return [r.get(scope.property) for r in responses if r.get(scope.property) is not None]
    else:
        raise ValueError(f"The in-memory search engine cannot filter on {scope!r}")
    return [] if value is None else _as_list(value)


def _response_status_matches(doc: dict, filter: TermsFilter) -> bool:
    scope: ResponseFilterScope = filter.scope
    wanted = {str(_enum_value(v)) for v in filter.values}
    responses = _responses_of(doc, scope.user)
    # "pending" means: no response yet (from this user, when a user is given).
    if ResponseStatusFilter.pending.value in wanted and not responses:
        return True
    return any(r["status"] in wanted for r in responses)


def _matches(doc: dict, filter: Any) -> bool:
    if filter is None:
        return True
    if isinstance(filter, AndFilter):
        return all(_matches(doc, f) for f in filter.filters)
    scope = filter.scope
    if isinstance(scope, ResponseFilterScope) and not scope.question and scope.property == "status":
        if not isinstance(filter, TermsFilter):
            raise ValueError("Response status can only be filtered by a list of statuses.")
        return _response_status_matches(doc, filter)
    values = _scope_values(doc, scope)
    if isinstance(filter, TermsFilter):
        return _matches_terms(values, filter.values) if values else False
    if isinstance(filter, RangeFilter):
        return any(_in_range(v, filter.ge, filter.le) for v in values)
    raise ValueError(f"The in-memory search engine does not know the filter {filter!r}")


def _words(text: Any) -> list[str]:
    return [w.lower() for w in _WORD.findall(str(text))]


def _text_score(doc: dict, query: Optional[Union[TextQuery, str]]) -> Optional[float]:
    """None when the record does not match; otherwise how many times the query's words occur."""
    if query is None:
        return 1.0
    if isinstance(query, str):
        query = TextQuery(q=query)
    fields = doc["fields"]
    texts = [fields.get(query.field)] if query.field else list(fields.values())
    words = [w for text in texts if text is not None for w in _words(text)]
    wanted = _words(query.q)
    if not wanted or not all(w in words for w in wanted):
        return None
    return float(sum(words.count(w) for w in wanted))


def _cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


def _sort_key(doc: dict, order: Any):
    values = [_comparable(v) for v in _scope_values(doc, order.scope)]
    numbers = [v for v in values if isinstance(v, float)]
    if numbers:
        value = sum(numbers) / len(numbers)
    else:
        value = str(values[0]) if values else None
    descending = _enum_value(order.order) == SortOrder.desc.value
    # Records without a value go last whatever the direction, as in Elasticsearch.
    return value is None, value, descending


def _sorted(docs: list[dict], orders: Optional[list]) -> list[dict]:
    # Python's sort is stable: sorting by the last order first gives a multi-key sort.
    for order in reversed(orders or []):
        present = [d for d in docs if _sort_key(d, order)[1] is not None]
        missing = [d for d in docs if _sort_key(d, order)[1] is None]
        descending = _enum_value(order.order) == SortOrder.desc.value
        present.sort(key=lambda d: _sort_key(d, order)[1], reverse=descending)
        docs = present + missing
    return docs


def _terms_metrics(values: list) -> TermsMetrics:
    counts: dict[str, int] = {}
    for value in values:
        counts[str(value)] = counts.get(str(value), 0) + 1
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return TermsMetrics(total=len(values), values=[TermsMetrics.TermCount(term=t, count=c) for t, c in ranked])


@SearchEngine.register(engine_name=ENGINE_NAME)
class MemorySearchEngine(SearchEngine):
    """Argilla's SearchEngine interface answered from a dictionary in the server's memory."""

    @classmethod
    async def new_instance(cls) -> "MemorySearchEngine":
        return cls()

    async def close(self) -> None:
        pass

    async def ping(self) -> bool:
        return True

    async def info(self) -> dict:
        return {"name": "in-memory test engine (tests/argilla_server)", "datasets": len(_INDEX)}

    # ---------------------------------------------------------------- indexes and documents

    async def create_index(self, dataset: Dataset) -> None:
        _INDEX.setdefault(dataset.id, {})

    async def delete_index(self, dataset: Dataset) -> None:
        _INDEX.pop(dataset.id, None)

    async def configure_metadata_property(self, dataset: Dataset, metadata_property: MetadataProperty) -> None:
        pass  # nothing to declare: documents are plain dictionaries

    async def configure_index_vectors(self, vector_settings: VectorSettings) -> None:
        pass

    async def index_records(self, dataset: Dataset, records: Iterable[Record]) -> None:
        index = _INDEX.setdefault(dataset.id, {})
        for record in records:
            index[record.id] = _as_document(record)

    async def partial_record_update(self, record: Record, **update: Any) -> None:
        doc = _INDEX.get(record.dataset_id, {}).get(record.id)
        if doc is not None:
            doc.update({k: str(_enum_value(v)) if k == "status" else v for k, v in update.items()})

    async def delete_records(self, dataset: Dataset, records: Iterable[Record]) -> None:
        index = _INDEX.get(dataset.id, {})
        for record in records:
            index.pop(record.id, None)

    def _doc_for(self, record: Record) -> Optional[dict]:
        return _INDEX.get(record.dataset_id, {}).get(record.id)

    async def update_record_response(self, response: Response) -> None:
        doc = self._doc_for(response.record)
        if doc is not None:
            doc["responses"][str(response.id)] = _response_document(response)

    async def delete_record_response(self, response: Response) -> None:
        doc = self._doc_for(response.record)
        if doc is not None:
            doc["responses"].pop(str(response.id), None)

    async def update_record_suggestion(self, suggestion: Suggestion) -> None:
        doc = self._doc_for(suggestion.record)
        if doc is not None:
            doc["suggestions"][suggestion.question.name] = _suggestion_document(suggestion)

    async def delete_record_suggestion(self, suggestion: Suggestion) -> None:
        doc = self._doc_for(suggestion.record)
        if doc is not None:
            doc["suggestions"].pop(suggestion.question.name, None)

    # ---------------------------------------------------------------- progress and metrics

    async def get_dataset_progress(self, dataset: Dataset) -> dict:
        if dataset.is_draft:
            return {}
        metrics = _terms_metrics([doc["status"] for doc in _INDEX.get(dataset.id, {}).values()])
        return {"total": metrics.total, **{v.term: v.count for v in metrics.values}}

    async def get_dataset_user_progress(self, dataset: Dataset, user: User) -> dict:
        if dataset.is_draft:
            return {}
        statuses = [r["status"] for doc in _INDEX.get(dataset.id, {}).values() for r in _responses_of(doc, user)]
        metrics = _terms_metrics(statuses)
        return {"total": metrics.total, **{v.term: v.count for v in metrics.values}}

    async def compute_metrics_for(self, metadata_property: MetadataProperty) -> MetadataMetrics:
        docs = _INDEX.get(metadata_property.dataset_id, {}).values()
        values = [doc["metadata"][metadata_property.name] for doc in docs
                  if doc["metadata"].get(metadata_property.name) is not None]
        kind = _enum_value(metadata_property.type)
        if kind == "terms":
            return _terms_metrics([v for value in values for v in _as_list(value)])
        metrics_class = IntegerMetadataMetrics if kind == "integer" else FloatMetadataMetrics
        return metrics_class(min=min(values) if values else None, max=max(values) if values else None)

    # ---------------------------------------------------------------- search

    async def search(
        self,
        dataset: Dataset,
        query: Optional[Union[TextQuery, str]] = None,
        filter: Optional[Any] = None,
        sort: Optional[list] = None,
        offset: int = 0,
        limit: int = 100,
        user_id: Optional[str] = None,
    ) -> SearchResponses:
        # user_id: Elasticsearch shuffles each user's queue; here every user sees indexing order.
        hits = []
        for doc in _INDEX.get(dataset.id, {}).values():
            score = _text_score(doc, query)
            if score is not None and _matches(doc, filter):
                hits.append((doc, score))
        scores = {doc["id"]: score for doc, score in hits}
        docs = _sorted([doc for doc, _ in hits], sort)
        page = docs[offset:offset + limit]
        items = [SearchResponseItem(record_id=UUID(doc["id"]), score=scores[doc["id"]]) for doc in page]
        return SearchResponses(items=items, total=len(docs))

    async def similarity_search(
        self,
        dataset: Dataset,
        vector_settings: VectorSettings,
        value: Optional[list[float]] = None,
        record: Optional[Record] = None,
        query: Optional[Union[TextQuery, str]] = None,
        filter: Optional[Any] = None,
        max_results: int = 100,
        order: SimilarityOrder = SimilarityOrder.most_similar,
        threshold: Optional[float] = None,
    ) -> SearchResponses:
        if bool(value) == bool(record):
            raise ValueError("Give either a vector value or a record for a similarity search, not both or neither.")
        key = str(vector_settings.id)
        excluded = None
        if record is not None:
            excluded = str(record.id)
            value = record.vector_value_by_vector_settings(vector_settings)
        if not value:
            raise ValueError("No vector to compare with.")
        hits = []
        for doc in _INDEX.get(dataset.id, {}).values():
            other = doc["vectors"].get(key)
            if other is None or doc["id"] == excluded:
                continue
            if _text_score(doc, query) is None or not _matches(doc, filter):
                continue
            similarity = _cosine(value, other)
            if threshold is None or similarity >= threshold:
                hits.append((similarity, doc["id"]))
        least = _enum_value(order) == SimilarityOrder.least_similar.value
        hits.sort(key=lambda hit: hit[0], reverse=not least)
        hits = hits[:max_results]
        items = [SearchResponseItem(record_id=UUID(doc_id), score=score) for score, doc_id in hits]
        return SearchResponses(items=items, total=len(items))
