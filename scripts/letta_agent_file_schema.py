"""Write the JSON schema of Letta's own AgentFileSchema, which tests/test_agentfile.py checks
our .af exports against (tests/data/letta_agent_file.schema.json):

    python3 -m venv /tmp/letta && /tmp/letta/bin/pip install letta==0.16.8 asyncpg
    /tmp/letta/bin/python scripts/letta_agent_file_schema.py tests/data/letta_agent_file.schema.json

Letta puts OpenAPI-only component refs on two message fields (for its own API docs), which
pydantic cannot resolve standalone: they are stripped, and the models rebuilt, first.
"""

import importlib
import inspect
import json
import pkgutil
import sys

import letta
import letta.schemas
import pydantic
from letta.schemas import agent_file

REBUILD_PASSES = 3  # models that embed others are rebuilt after those


def _refs_components(extra) -> bool:
    try:
        value = extra() if callable(extra) else extra
        return "components/schemas" in json.dumps(value, default=str)
    except Exception:
        return False


def _letta_models() -> set[type]:
    models = set()
    for info in pkgutil.iter_modules(letta.schemas.__path__):
        try:
            module = importlib.import_module(f"letta.schemas.{info.name}")
        except Exception:
            continue
        models |= {value for value in vars(module).values()
                   if inspect.isclass(value) and issubclass(value, pydantic.BaseModel)}
    return models


def _strip_component_refs(models: set[type]) -> None:
    for cls in models:
        for field in cls.model_fields.values():
            if field.json_schema_extra is not None and _refs_components(field.json_schema_extra):
                field.json_schema_extra = None
    ordered = sorted(models, key=lambda c: len(c.__mro__))  # bases first
    for _ in range(REBUILD_PASSES):
        for cls in ordered:
            try:
                cls.model_rebuild(force=True)
            except Exception:
                pass


def main(out: str) -> None:
    _strip_component_refs(_letta_models())
    schema = agent_file.AgentFileSchema.model_json_schema()
    schema["$comment"] = (f"Letta {letta.__version__}: letta.schemas.agent_file.AgentFileSchema"
                          ".model_json_schema(), fields' OpenAPI-only component refs stripped "
                          "(scripts/letta_agent_file_schema.py)")
    with open(out, "w") as file:
        json.dump(schema, file, indent=1, sort_keys=True)
    print(json.dumps({"out": out, "letta": letta.__version__, "bytes": len(json.dumps(schema))}))


if __name__ == "__main__":
    main(sys.argv[1])
