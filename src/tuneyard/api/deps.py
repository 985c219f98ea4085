"""FastAPI dependencies: the process context, a unit of work, and the caller's organization."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from tuneyard.context import Context
from tuneyard.services import orgs


def get_ctx(request: Request) -> Context:
    return request.app.state.ctx


def get_session(ctx: Annotated[Context, Depends(get_ctx)]) -> Iterator[Session]:
    with ctx.db.session() as session:
        yield session


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def get_principal(request: Request, ctx: Annotated[Context, Depends(get_ctx)]) -> orgs.Principal:
    # Its own short transaction, so that the key check is committed before a long handler runs.
    with ctx.db.session() as session:
        principal = orgs.authenticate(session, bearer_token(request))
    request.state.principal = principal
    return principal


CtxDep = Annotated[Context, Depends(get_ctx)]
# scope="function": commit (or roll back) when the route returns, before the response is sent,
# so a client never sees a success whose commit then fails, and streams hold no transaction.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
PrincipalDep = Annotated[orgs.Principal, Depends(get_principal)]
