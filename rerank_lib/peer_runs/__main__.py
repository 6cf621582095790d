"""`python -m rerank_lib.peer_runs`: write docs/peer_settings.md from the peers' run files (tests check it)."""
from ..atomic import write_text
from . import DOCUMENT, PEERS, settings_document

if __name__ == "__main__":
    print(f"wrote {write_text(DOCUMENT, settings_document(PEERS))}")
