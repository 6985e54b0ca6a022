"""Agents: create, list, show, change settings, delete, export and import."""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query, Response

from ...memory.core import BlockChange
from ..schemas import (
    AgentCopy,
    AgentCreate,
    AgentDetail,
    AgentSettingsIn,
    AgentSummary,
    LettaImported,
)
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
        blocks = {label: BlockChange(**block.model_dump())
                  for label, block in body.blocks.items()}
        record, notes = host.engine.create_agent(body.name, body.model, body.n_ctx,
                                                 body.persona, body.human,
                                                 settings=body.settings(), blocks=blocks)
        return {**host.engine.show_agent(record.name), "notes": notes}

    return host.run(create, body.name)


@router.post("/import", response_model=AgentDetail, status_code=201)
def import_agent(document: Annotated[dict[str, Any], Body(description="An exported agent")],
                 host: Host,
                 name: Annotated[str | None, Query(description="A new name for it")] = None
                 ) -> dict:
    """Recreate an exported agent, all or nothing."""
    return host.run(lambda: host.engine.show_agent(
        host.engine.transfer.import_document(document, name).name))


@router.post("/import/af", response_model=list[LettaImported], status_code=201)
def import_letta_agents(
        document: Annotated[dict[str, Any] | str, Body(description="A Letta agent file (.af)")],
        host: Host,
        agent: Annotated[str | None, Query(description="Only this agent of the file")] = None,
        model: Annotated[str | None, Query(description="The local model to run on")] = None,
        name: Annotated[str | None, Query(description="A new name (one agent)")] = None,
        our_instructions: Annotated[bool, Query(description="Ours, not its system prompt")]
        = False) -> list[dict]:
    """Recreate every agent of a Letta agent file (or one), all or nothing; each with what
    came over and what did not (tools that carry code are listed, never run)."""
    def run() -> list[dict]:
        imported = host.engine.transfer.import_letta_document(document, agent, model, name,
                                                     our_instructions)
        return [{"name": a.export.record.name, "summary": a.summary(),
                 "tools_mapped": a.tools_mapped, "tools_skipped": a.tools_skipped,
                 "rules_dropped": a.rules_dropped, "notes": a.notes} for a in imported]

    return host.run(run)


@router.get("/{name}", response_model=AgentDetail)
def show_agent(name: str, host: Host) -> dict:
    """An agent's model, window, core memory, summary and counts."""
    return host.run(lambda: host.engine.show_agent(name), name)


@router.patch("/{name}", response_model=AgentDetail)
def configure_agent(name: str, body: AgentSettingsIn, host: Host) -> dict:
    """Change an agent's tool rules or memory hits (checked first: a bad rule is a 400
    naming it, and nothing changes)."""
    return host.run(lambda: host.change(
        name, lambda: host.engine.configure_agent(name, body.changes())), name)


@router.delete("/{name}", status_code=204)
def delete_agent(name: str, host: Host) -> Response:
    """Delete an agent with all its memory."""
    host.run(lambda: host.change(name, lambda: host.engine.delete_agent(name)), name)
    return Response(status_code=204)


@router.post("/{name}/copy", response_model=AgentDetail, status_code=201)
def copy_agent(name: str, body: AgentCopy, host: Host) -> dict:
    """Copy an agent under a new name: core memory, settings, messages and passages."""
    def copy() -> dict:
        return host.engine.show_agent(host.engine.transfer.copy_agent(name, body.name).name)

    return host.run(lambda: host.change(name, copy), name)


@router.get("/{name}/export")
def export_agent(name: str, host: Host,
                 format: Annotated[Literal["memgpt-local", "af"], Query(
                     description="memgpt-local: everything, passages included; af: a Letta "
                                 "agent file")] = "memgpt-local") -> dict:
    """The agent, its messages and passages as one portable JSON document (or a Letta
    agent file with the agent and its messages)."""
    export = (host.engine.transfer.export_letta_document if format == "af"
              else host.engine.transfer.export_document)
    return host.run(lambda: export(name), name)
