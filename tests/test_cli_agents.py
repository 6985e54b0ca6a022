"""Agent management from the command line (no generation needed)."""

import json

from click.testing import CliRunner

from memgpt_local.cli import cli
from memgpt_local.memory.database import Database
from memgpt_local.memory.recall import Message, RecallStorage


def invoke(home, *args, input=None):
    return CliRunner().invoke(cli, list(args), input=input,
                              env={"MEMGPT_LOCAL_HOME": str(home)})


def test_create_list_show_export_import_delete(tmp_path):
    home = tmp_path / "home"
    persona = tmp_path / "persona.txt"
    persona.write_text("I am Kit, a patient tutor.")
    created = invoke(home, "agents", "create", "kit", "--n-ctx", "4096", "--persona", str(persona))
    assert created.exit_code == 0, created.output
    assert "Created agent 'kit' on smollm2-135m (4096-token window)" in created.output
    assert invoke(home, "agents", "create", "kit").exit_code == 1
    with Database(home) as db:
        RecallStorage(db.con, "kit").append(Message("user", "I study Portuguese."))
        db.con.execute("UPDATE agents SET in_context = (SELECT to_json(list(id)) FROM messages)")
    listing = invoke(home, "agents", "list")
    assert "kit" in listing.output and "smollm2-135m" in listing.output
    info = json.loads(invoke(home, "agents", "show", "kit", "--json").output)
    assert info["core_memory"]["persona"]["value"] == "I am Kit, a patient tutor."
    assert (info["n_ctx"], info["recall_messages"], info["in_context_messages"]) == (4096, 1, 1)

    exported = tmp_path / "kit.json"
    assert invoke(home, "agents", "export", "kit", str(exported)).exit_code == 0
    assert invoke(home, "agents", "import", str(exported)).exit_code == 1  # name taken
    imported = invoke(home, "agents", "import", str(exported), "--name", "kit2")
    assert imported.exit_code == 0, imported.output
    copy = json.loads(invoke(home, "agents", "show", "kit2", "--json").output)
    assert copy["core_memory"] == info["core_memory"]
    assert (copy["recall_messages"], copy["in_context_messages"]) == (1, 1)

    copied = invoke(home, "agents", "copy", "kit", "kit3")
    assert copied.exit_code == 0 and "(1 messages, 0 passages)" in copied.output
    fork = json.loads(invoke(home, "agents", "show", "kit3", "--json").output)
    assert fork["core_memory"] == info["core_memory"] and fork["in_context_messages"] == 1
    taken = invoke(home, "agents", "copy", "kit", "kit2")
    assert taken.exit_code == 1 and "'kit2' already exists" in taken.output
    assert "Traceback" not in taken.output

    assert invoke(home, "agents", "delete", "kit", input="n\n").exit_code == 1  # declined
    assert invoke(home, "agents", "delete", "kit", "--yes").exit_code == 0
    missing = invoke(home, "agents", "show", "kit")
    assert missing.exit_code == 1 and "Agents: kit2, kit3" in missing.output


def test_small_window_lowers_block_limits(tmp_path):
    result = invoke(tmp_path, "agents", "create", "tiny", "--n-ctx", "2048")
    assert result.exit_code == 0, result.output
    info = json.loads(invoke(tmp_path, "agents", "show", "tiny", "--json").output)
    assert info["core_memory"]["human"]["limit"] < 2000
    assert "Core memory limits lowered" in result.output


def test_blocks_of_any_label_with_description_and_read_only(tmp_path):
    project = tmp_path / "project.txt"
    project.write_text("We build a boat.")
    created = invoke(tmp_path, "agents", "create", "sam", "--n-ctx", "2048", "--block",
                     f"project={project}", "--describe", "project=What we are building",
                     "--read-only", "persona")
    assert created.exit_code == 0, created.output
    shown = json.loads(invoke(tmp_path, "agents", "show", "sam", "--json").output)
    blocks = shown["core_memory"]
    assert list(blocks) == ["persona", "human", "project"]
    assert blocks["project"]["value"] == "We build a boat."
    assert blocks["project"]["description"] == "What we are building"
    assert blocks["persona"]["read_only"] and "read_only" not in blocks["human"]
    edited = invoke(tmp_path, "agents", "block", "sam", "project", "--writable", "--limit", "50")
    assert edited.exit_code == 0 and "16/50 characters." in edited.output
    added = invoke(tmp_path, "agents", "block", "sam", "todo", "--limit", "60",
                   "--description", "Things to do")
    assert added.exit_code == 0, added.output
    for bad, message in [(("project", "--limit", "90000"), "leaving too little for messages"),
                         (("bad label",), "Invalid block label 'bad label'"),
                         (("project", "--limit", "3"), "has 16 characters")]:
        result = invoke(tmp_path, "agents", "block", "sam", *bad)
        assert result.exit_code == 1 and message in result.output, result.output
    after = json.loads(invoke(tmp_path, "agents", "show", "sam", "--json").output)
    assert after["core_memory"]["project"]["limit"] == 50  # the refused edits changed nothing
    assert after["core_memory"]["todo"] == {"value": "", "limit": 60,
                                            "description": "Things to do"}


def test_an_optional_function_is_offered_and_withdrawn_from_the_cli(tmp_path):
    assert invoke(tmp_path, "agents", "create", "sam", "--n-ctx", "2048").exit_code == 0
    offered = invoke(tmp_path, "agents", "set", "sam", "--offer", "core_memory_rethink")
    assert offered.exit_code == 0 and \
        "optional functions offered: core_memory_rethink" in offered.output
    withdrawn = invoke(tmp_path, "agents", "set", "sam", "--offer", "none")
    assert "optional functions offered: none" in withdrawn.output
    wrong = invoke(tmp_path, "agents", "set", "sam", "--offer", "send_mail")
    assert wrong.exit_code == 2 and "'send_mail' is not one of" in wrong.output


def test_a_block_or_persona_with_a_nul_is_refused_in_one_line(tmp_path):
    """Text no store can hold never reaches one (PostgreSQL refuses a NUL mid-step)."""
    home, bad = tmp_path / "home", tmp_path / "bad.txt"
    bad.write_text("Ann\x00 likes tea")
    made = invoke(home, "agents", "create", "kit", "--persona", str(bad))
    assert made.exit_code == 1 and "U+0000" in made.output and made.output.count("\n") == 1
    assert invoke(home, "agents", "create", "kit").exit_code == 0
    edited = invoke(home, "agents", "block", "kit", "human", "--file", str(bad))
    assert edited.exit_code == 1 and "U+0000" in edited.output, edited.output
    shown = json.loads(invoke(home, "agents", "show", "kit", "--json").output)
    assert "\x00" not in json.dumps(shown)


def test_new_agents_get_the_reply_architecture_and_stored_ones_keep_theirs(tmp_path):
    """The default chosen by measurement (docs/benchmarks.md) applies to new agents only: an
    agent stored before architectures existed (no key) is still the paper's."""
    assert invoke(tmp_path, "agents", "create", "new", "--n-ctx", "2048").exit_code == 0
    assert invoke(tmp_path, "agents", "create", "old", "--n-ctx", "2048").exit_code == 0
    with Database(tmp_path) as db:
        db.con.execute("UPDATE agents SET settings = json_object('n_ctx', 2048) "
                       "WHERE name = 'old'")
    shown = {name: json.loads(invoke(tmp_path, "agents", "show", name, "--json").output)
             for name in ("new", "old")}
    assert (shown["new"]["architecture"], shown["old"]["architecture"]) == ("reply", "memgpt")
    paper = invoke(tmp_path, "agents", "create", "paper", "--n-ctx", "2048",
                   "--architecture", "memgpt")
    assert paper.exit_code == 0
    assert json.loads(invoke(tmp_path, "agents", "show", "paper", "--json").output)[
        "architecture"] == "memgpt"
