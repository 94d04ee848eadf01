"""/searches: budgeted successive-halving searches whose trials are ordinary jobs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from app.api.events import MAX_EVENT_ID, parse_last_event_id, poll_events
from app.deps import Limit, Offset, ReadCaller, ServicesDep, WriteCaller
from app.schemas.common import errors
from app.schemas.searches import SearchCreate, SearchesPublic, SearchPublic
from app.services.searches import SearchService

router = APIRouter(prefix="/searches", tags=["searches"])


@router.post("", status_code=202, responses=errors(401, 403, 404, 422, 424, 503))
def create_search(
    services: ServicesDep, caller: WriteCaller, body: SearchCreate, response: Response
) -> SearchPublic:
    """Start a search (202): the meta-learner's portfolio first, then the sampler, losers stopped
    early by successive halving over epochs; follow it at ``/searches/{id}/events``."""
    search = services.searches.create(body, caller)
    response.headers["Location"] = f"/searches/{search.id}"
    return services.searches.public(search)


@router.get("", responses=errors(401))
def list_searches(
    services: ServicesDep, caller: ReadCaller, offset: Offset = 0, limit: Limit = 50
) -> SearchesPublic:
    data, count = services.searches.list(offset=offset, limit=limit, caller=caller)
    return SearchesPublic(
        data=[services.searches.public(s, with_leaderboard=False) for s in data], count=count
    )


@router.get("/{search_id}", responses=errors(401, 404))
def get_search(services: ServicesDep, caller: ReadCaller, search_id: str) -> SearchPublic:
    """The search's state, its best trial (its job holds the delivered student) and the leaderboard."""
    return services.searches.public(services.searches.get(search_id, caller))


@router.post("/{search_id}/cancel", responses=errors(401, 403, 404, 409))
def cancel_search(services: ServicesDep, caller: WriteCaller, search_id: str) -> SearchPublic:
    """Cancel the search and its queued and running trial jobs; it ends ``cancelled``."""
    return services.searches.public(services.searches.cancel(search_id, caller))


def _stream(searches: SearchService, search_id: str, after: int, timeout_s: float) -> AsyncIterator[str]:
    def status() -> tuple[bool, str]:
        search = searches.get(search_id)
        return search.terminal, search.status

    return poll_events(lambda since: searches.events(search_id, since), status, after, timeout_s)


@router.get(
    "/{search_id}/events",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events"},
        **errors(401, 404, 422),
    },
)
async def search_events(
    services: ServicesDep,
    caller: ReadCaller,
    search_id: str,
    after: Annotated[int, Query(ge=0, le=MAX_EVENT_ID, description="send events with a larger id")] = 0,
    timeout_s: Annotated[float, Query(gt=0, le=3600, description="close the stream after this long")] = 600,
    last_event_id: Annotated[str | None, Header(max_length=20)] = None,
) -> StreamingResponse:
    """The search's progress as Server-Sent Events: ``event: trial`` (started, promoted, pruned,
    stopped, complete, failed, with epochs and scores), ``status`` and ``log``; ends with
    ``event: end`` once the search has finished."""
    await run_in_threadpool(services.searches.get, search_id, caller)  # 404 before the stream starts
    resumed = parse_last_event_id(last_event_id)
    start = after if resumed is None else resumed
    return StreamingResponse(
        _stream(services.searches, search_id, start, timeout_s),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
