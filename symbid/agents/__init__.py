"""Agent kinds run inside a run's child process (issue 10).

``symbid.agents`` holds the LLM agent runtime: an OpenAI-compatible chat-completions
client (:mod:`.llm`), the conversation loop with its limits (:mod:`.conversation`), tools
and their JSON Schema subset (:mod:`.tools`, :mod:`.schema`), the run spec (:mod:`.spec`)
and the child entry point ``python -m symbid.agents.child`` (:mod:`.child`). The child
protocol is in ``docs/llm-agents.md``.

This package stands at level 2 of the import ladder and keeps its imports lean: the child
imports only the standard library and these modules.
"""
