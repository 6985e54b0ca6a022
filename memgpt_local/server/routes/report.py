"""A benchmark report's files (`memgpt-local bench report --out DIR`), for the web page."""

from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse

router = APIRouter(prefix="/report", tags=["report"])
SERVED = (".json", ".png", ".md")


@router.get("/{file}")
def report_file(file: str, request: Request) -> FileResponse:
    """A file of the report the server was started with (serve --report DIR): summary.json,
    summary.md or a plot."""
    folder = request.app.state.host.settings.report_dir
    if folder is None:
        raise HTTPException(404, "This server has no report: start it with "
                                 "--report DIR (a folder written by memgpt-local bench report).")
    files = {path.name: path for path in folder.iterdir() if _servable(path, folder)}
    if file not in files:
        raise HTTPException(404, f"The report has no file {file!r}.")
    return FileResponse(files[file])


def _servable(path: Path, folder: Path) -> bool:
    """A report file: a plain file of a served kind, in the folder itself (a link to anywhere
    else, or a folder, is not served)."""
    return (path.suffix in SERVED and not path.is_symlink() and path.is_file()
            and path.resolve().parent == folder.resolve())
