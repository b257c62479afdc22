"""Request-scoped access to the process-wide state (overridable in tests)."""

from fastapi import Request

from .state import ServiceState


async def get_state(request: Request) -> ServiceState:
    # async: a plain function would be run in the thread pool on every request.
    return request.app.state.service
