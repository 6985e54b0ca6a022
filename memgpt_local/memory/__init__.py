"""The memory layer: the home database and its migrations, agent records, core memory, recall
and archival storage, keyword and text indexes, paging, embeddings and document loading. It knows
nothing of models or agents."""
