"""Agents: create, list, show, change settings, delete, export and import."""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Response

from ..schemas import AgentCreate, AgentDetail, AgentSettingsIn, AgentSummary
from . import Host

router = APIRouter(prefix="/agents", tags=["agents"])


@router.get("", response_model=list[AgentSummary])
def list_agents(host: Host) -> list[dict]:
    """Every agent, last used first."""
    return host.run(host.engine.list_agents)


@router.post("", response_model=AgentDetail, status_code=201)
def create_agent(body: AgentCreate, host: Host) -> dict:
    """Create an agent (its core memory limits lowered to fit the window, with a note)."""
    def create() -> dict:
        record, notes = host.engine.create_agent(body.name, body.model, body.n_ctx,
                                                 body.persona, body.human,
                                                 settings=body.settings())
        return {**host.engine.show_agent(record.name), "notes": notes}

    return host.run(create, body.name)


@router.post("/import", response_model=AgentDetail, status_code=201)
def import_agent(document: Annotated[dict[str, Any], Body(description="An exported agent")],
                 host: Host,
                 name: Annotated[str | None, Query(description="A new name for it")] = None
                 ) -> dict:
    """Recreate an exported agent, all or nothing."""
    return host.run(lambda: host.engine.show_agent(
        host.engine.import_document(document, name).name))


@router.get("/{name}", response_model=AgentDetail)
def show_agent(name: str, host: Host) -> dict:
    """An agent's model, window, core memory, summary and counts."""
    return host.run(lambda: host.engine.show_agent(name), name)


@router.patch("/{name}", response_model=AgentDetail)
def configure_agent(name: str, body: AgentSettingsIn, host: Host) -> dict:
    """Change an agent's tool rules or memory hits (checked first: a bad rule is a 400
    naming it, and nothing changes)."""
    def configure() -> dict:
        host.release(name)  # reopened with the new settings at its next turn
        return host.engine.configure_agent(name, body.changes())

    return host.run(configure, name)


@router.delete("/{name}", status_code=204)
def delete_agent(name: str, host: Host) -> Response:
    """Delete an agent with all its memory."""
    def delete() -> None:
        host.release(name)
        host.engine.delete_agent(name)

    host.run(delete, name)
    return Response(status_code=204)


@router.get("/{name}/export")
def export_agent(name: str, host: Host) -> dict:
    """The agent, its messages and passages as one portable JSON document."""
    return host.run(lambda: host.engine.export_document(name), name)
