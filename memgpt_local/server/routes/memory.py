"""Memory: core memory (read, edit), archival (insert, search, documents), recall search."""

import tempfile
from datetime import date
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, HTTPException, Query, UploadFile

from ...agent.functions import replies_shown
from ...agent.loop import Agent
from ...memory.core import BlockChange
from ...memory.messages import Message
from ...memory.paging import Page as PageOf
from ..schemas import MAX_TEXT, BlockEdit, Inserted, LoadResult, PassageIn, SearchPage
from . import Host, Page

router = APIRouter(prefix="/agents/{name}", tags=["memory"])
Text = Annotated[str, Query(min_length=1, max_length=MAX_TEXT)]
OptionalText = Annotated[str | None, Query(max_length=MAX_TEXT)]
Date = Annotated[date | None, Query(description="An ISO date (start and end: both inclusive)")]


@router.get("/core-memory")
def read_core_memory(name: str, host: Host) -> dict:
    """Every core-memory block with its text and limit."""
    return host.run(lambda: host.engine.show_agent(name)["core_memory"], name)


@router.put("/core-memory/{label}")
def edit_core_memory(name: str, label: str, body: BlockEdit,
                     host: Host) -> dict:
    """Change a block's text, limit, description or read-only flag (fields left out stay as
    they are), or add a block of that label; the text must fit the limit, and every block
    full must leave room for messages in the window. Read-only binds the agent, not you."""
    def edit() -> dict:
        return host.engine.edit_block(name, label, BlockChange(**body.model_dump()))[
            "core_memory"]

    return host.run(lambda: host.change(name, edit), name)


@router.post("/archival", response_model=Inserted, status_code=201)
def insert_passage(name: str, body: PassageIn, host: Host) -> dict:
    """Store a passage in archival memory."""
    return {"inserted": host.run(lambda: host.use(
        name, lambda agent: agent.insert_passage(body.text)), name)}


@router.get("/archival", response_model=SearchPage)
def search_archival(name: str, query: Text, host: Host, page: Page = 1) -> dict:
    """Search archival memory by meaning and by words."""
    found = host.run(lambda: host.use(
        name, lambda agent: agent.archival_search(query, page)), name)
    return page_dict(found, found.items)


@router.get("/recall", response_model=SearchPage)
def search_recall(name: str, host: Host, query: OptionalText = None, start: Date = None,
                  end: Date = None, page: Page = 1) -> dict:
    """Search every past message, by text or by a date range. A text search shows each hit
    with the message that followed it (`next`), as the agent's own search shows it."""
    if not query and not (start and end):
        raise HTTPException(400, "Give query, or start and end dates.")
    if not query and start and end and end < start:
        raise HTTPException(400, f"end {end} is before start {start}.")

    def search(agent: Agent) -> tuple[PageOf, dict]:
        if not query and start and end:
            return agent.recall_search_date(start.isoformat(), end.isoformat(), page), {}
        query_text = query or ""
        found = agent.recall_search(query_text, page)
        return found, replies_shown(found, agent.recall_next(found.items))

    found, replies = host.run(lambda: host.use(name, search), name)
    return page_dict(found, [{**message_dict(m), "next": _message_or_none(replies.get(m.id))}
                             for m in found.items])


def _message_or_none(message: Message | None) -> dict | None:
    return message_dict(message) if message is not None else None


def page_dict(found: PageOf, items: list) -> dict:
    """A page of results as JSON."""
    return {"page": found.page, "pages": found.pages, "page_size": found.page_size,
            "total": found.total, "items": items}


def message_dict(message: Message) -> dict:
    """A recall message as JSON."""
    return {"seq": message.seq, "role": message.role, "content": message.content,
            "function_name": message.function_name, "function_args": message.function_args,
            "created_at": message.created_at.isoformat() if message.created_at else None}


@router.post("/documents", response_model=LoadResult, status_code=201)
def upload_documents(name: str, files: Annotated[list[UploadFile], File()],
                     host: Host) -> dict:
    """Load text, Markdown or JSONL files into archival memory: read, split and embedded on
    this request's thread while other agents' turns go on, then stored (each passage's source
    is the file's name)."""
    engine = host.engine

    def stored_hashes() -> set[str]:
        engine.records.get(name)  # an unknown agent is a 404 before anything is read
        engine.embedder()  # loaded once, on the worker
        return engine.passage_hashes(name)

    known = host.run(stored_hashes, name)
    with tempfile.TemporaryDirectory(prefix="memgpt-upload-") as folder:
        uploaded = _save_uploads(files, Path(folder))
        prepared = engine.prepare_documents(list(uploaded), sources=uploaded, known=known)
    report = host.run(lambda: host.change(
        name, lambda: engine.store_documents(name, prepared)), name)
    if report.failed and not report.files:
        raise HTTPException(400, "Nothing was loaded: " + "; ".join(
            f"{file}: {why}" for file, why in report.failed.items()))
    return report.__dict__


def _save_uploads(files: list[UploadFile], folder: Path) -> dict[Path, str]:
    """Each upload saved under its own folder with its base name (the suffix says how to read
    it); the client's file name of each saved file."""
    saved = {}
    for number, upload in enumerate(files):
        original = Path(upload.filename or "").name
        if not original.strip("."):  # "", ".", "..": a name that is a folder
            original = "upload.txt"
        path = folder / str(number) / original
        path.parent.mkdir()
        path.write_bytes(upload.file.read())
        saved[path] = original
    return saved
